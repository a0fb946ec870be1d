"""The TUSK network end to end: shapes, gradients into every part, both decoder modes, on every
CPU op backend (``cpp`` needs the C++ kernels of all the ops the model uses)."""
import pytest
import torch

from tusk import ops
from tusk.model import TUSK, ModelConfig, UNet

MODES = [pytest.param(False, id="weighted-sum"), pytest.param(True, id="alpha")]


def small_config(alpha: bool, **overrides) -> ModelConfig:
    values = dict(channels=8, keypoints=3, prototypes=5, window=5, width=4, levels=3, alpha_blending=alpha)
    values.update(overrides)
    return ModelConfig(**values)


@pytest.fixture(params=["reference", "cpp"])
def backend(request):
    """Runs the whole model with one backend for every op (through ``use_backend``)."""
    with ops.use_backend(request.param):
        yield request.param


@pytest.mark.parametrize("alpha", MODES)
def test_forward_shapes(backend, alpha):
    model = TUSK(small_config(alpha))
    images = torch.rand(2, 3, 19, 23)  # odd, non-square: the U-Net resizes to its skips
    out = model(images)
    assert out.reconstruction.shape == (2, 3, 19, 23)
    assert out.xy.shape == (2, 3, 2) and out.scores.shape == (2, 3) and out.valid.shape == (2, 3)
    assert out.descriptors.shape == (2, 3, 8) and out.labels.shape == (2, 3)
    assert out.heatmap.shape == out.score_map.shape == (2, 1, 19, 23)
    assert out.features.shape == (2, 8, 19, 23)
    assert out.reconstruction.min() >= 0 and out.reconstruction.max() <= 1
    torch.testing.assert_close(out.descriptors.norm(dim=-1), torch.ones(2, 3))
    assert (out.xy[..., 0] >= 0).all() and (out.xy[..., 0] <= 22).all()
    assert (out.xy[..., 1] >= 0).all() and (out.xy[..., 1] <= 18).all()
    assert out.labels.dtype == torch.int64 and (out.labels >= 0).all() and (out.labels < 5).all()
    if alpha:
        assert out.alpha.shape == (2, 3, 1, 19, 23) and out.rgb.shape == (2, 3, 3, 19, 23)
        torch.testing.assert_close(out.alpha.sum(dim=1), torch.ones(2, 1, 19, 23))
        masks = out.masks
        assert masks.shape == (2, 3, 19, 23) and (masks.sum(dim=1) == 1).all()
    else:
        assert out.alpha is None and out.rgb is None and out.masks is None


@pytest.mark.parametrize("alpha", MODES)
def test_gradients_reach_every_part(backend, alpha):
    """Reconstruction loss reaches decoder, encoder trunk and the heatmap head (through the
    keypoint positions and scores); a descriptor loss reaches the prototypes."""
    model = TUSK(small_config(alpha)).double()
    images = torch.rand(2, 3, 16, 16, dtype=torch.float64)
    out = model(images)
    (out.reconstruction - images).pow(2).mean().backward()
    for name, module in (("decoder", model.decoder), ("encoder.features", model.encoder.features),
                         ("encoder.heatmap_head", model.encoder.heatmap_head)):
        grads = [p.grad for p in module.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads), name
        assert sum(float(g.abs().sum()) for g in grads) > 0, name
    assert model.prototypes.grad is None  # the reconstruction does not involve prototypes
    model.prototype_distances(out.descriptors.detach()).sum().backward()
    assert model.prototypes.grad is not None and model.prototypes.grad.abs().sum() > 0


def test_keypoint_positions_get_gradients(backend):
    """The heatmap head learns where keypoints go: d(recon)/d(heatmap) is non-zero near peaks."""
    model = TUSK(small_config(False))
    images = torch.rand(1, 3, 16, 16)
    features, heatmap = model.encoder(images)
    heatmap.retain_grad()
    score_map = torch.sigmoid(heatmap)
    detections = model.detect(score_map)
    descriptors = model.describe(features, detections.xy)
    recon = model.decode(detections.xy, descriptors, detections.score, (16, 16))[0]
    recon.mean().backward()
    assert heatmap.grad.abs().sum() > 0


@pytest.mark.parametrize("alpha", MODES)
def test_backends_agree(alpha):
    """Same weights, same images: the cpp ops give the reference's outputs and gradients."""
    model = TUSK(small_config(alpha))
    images = torch.rand(2, 3, 20, 20)
    results = {}
    for name in ("reference", "cpp"):
        model.zero_grad()
        with ops.use_backend(name):
            out = model(images)
            out.reconstruction.square().mean().backward()
        grads = torch.cat([p.grad.flatten() for p in model.decoder.parameters()]
                          + [p.grad.flatten() for p in model.encoder.parameters()])
        results[name] = (out, grads)
    (ref, ref_grads), (cpp, cpp_grads) = results["reference"], results["cpp"]
    for field in ("xy", "scores", "descriptors", "reconstruction"):
        torch.testing.assert_close(getattr(cpp, field), getattr(ref, field), rtol=1e-4, atol=1e-5)
    assert torch.equal(cpp.valid, ref.valid)
    torch.testing.assert_close(cpp_grads, ref_grads, rtol=1e-3, atol=1e-6 * float(ref_grads.abs().max()))


def test_forward_is_deterministic():
    model = TUSK(small_config(True))
    images = torch.rand(2, 3, 16, 16)
    with ops.use_backend("reference"):
        a, b = model(images), model(images)
    assert torch.equal(a.reconstruction, b.reconstruction) and torch.equal(a.xy, b.xy)


def test_render_prototypes():
    for alpha in (False, True):
        model = TUSK(small_config(alpha, prototypes=7))
        with ops.use_backend("reference"):
            renders = model.render_prototypes((12, 14), chunk=3)
        assert renders.shape == (7, 3, 12, 14)
        assert renders.min() >= 0 and renders.max() <= 1


def test_labels_are_nearest_prototypes():
    model = TUSK(small_config(False))
    with ops.use_backend("reference"):
        out = model(torch.rand(2, 3, 16, 16))
    protos = model.normalized_prototypes()
    expected = torch.cdist(out.descriptors, protos[None].expand(2, -1, -1)).argmin(-1)
    assert torch.equal(out.labels, expected)


def test_threshold_marks_low_scores_invalid():
    model = TUSK(small_config(False, threshold=2.0))  # sigmoid scores are < 1: nothing passes
    with ops.use_backend("reference"):
        out = model(torch.rand(1, 3, 16, 16))
    assert not out.valid.any()


@pytest.mark.parametrize("bad, match", [
    (torch.rand(2, 1, 16, 16), r"images must have shape \[B, 3, H, W\]"),
    (torch.rand(3, 16, 16), r"images must have shape \[B, 3, H, W\]"),
    (torch.rand(1, 3, 3, 3), "needs images of at least 4x4"),
])
def test_exception(bad, match):
    model = TUSK(small_config(False))
    with ops.use_backend("reference"), pytest.raises(ValueError, match=match):
        model(bad)


@pytest.mark.parametrize("field, value", [("keypoints", 0), ("window", 4), ("variance", 0.0), ("levels", 0)])
def test_bad_config(field, value):
    with pytest.raises(ValueError, match=f"model.{field}"):
        TUSK(small_config(False, **{field: value}))


def test_unet_sizes_and_widths():
    net = UNet(3, 5, width=4, levels=4)
    for size in [(8, 8), (35, 35), (9, 31)]:
        assert net(torch.rand(1, 3, *size)).shape == (1, 5, *size)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert max(c.out_channels for c in convs) == 4 * 2**3
    norms = [m for m in net.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert norms and all(n.num_groups == 4 for n in norms)


def test_unet_checkpoint_gives_the_same_values_and_gradients():
    """Recomputing the activations in backward changes memory, not results (float64: equal to
    rounding; the recomputed forward runs the same kernels on the same inputs)."""
    torch.manual_seed(0)
    plain = UNet(3, 5, width=4, levels=3).double()
    recomputing = UNet(3, 5, width=4, levels=3, checkpoint=True).double()
    recomputing.load_state_dict(plain.state_dict())
    images = torch.rand(2, 3, 13, 18, dtype=torch.float64)
    outputs, grads = [], []
    for net in (plain, recomputing):
        x = images.clone().requires_grad_(True)
        out = net(x)
        out.backward(torch.cos(out.detach()))
        outputs.append(out.detach())
        grads.append(torch.cat([x.grad.flatten()] + [p.grad.flatten() for p in net.parameters()]))
    torch.testing.assert_close(outputs[1], outputs[0], rtol=0, atol=0)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-12, atol=1e-12)
    with torch.no_grad():  # no recomputation without autograd
        torch.testing.assert_close(recomputing(images), outputs[0], rtol=0, atol=0)


def test_model_checkpoint_reduces_training_memory():
    """``model.checkpoint`` keeps the same outputs and lowers the peak memory of a backward."""
    peak_cpu_bytes = _benchmark_peak_cpu_bytes()

    def run(checkpoint: bool) -> tuple[float, torch.Tensor]:
        torch.manual_seed(0)
        model = TUSK(small_config(False, width=8, levels=3, checkpoint=checkpoint))
        images = torch.rand(4, 3, 48, 48)
        outputs = []

        def step():
            out = model(images)
            out.reconstruction.square().mean().backward()
            outputs.append(out.reconstruction.detach())

        return peak_cpu_bytes(step) / 2**20, outputs[0]

    plain_mb, plain_out = run(False)
    recomputed_mb, recomputed_out = run(True)
    torch.testing.assert_close(recomputed_out, plain_out, rtol=0, atol=0)
    assert recomputed_mb < 0.8 * plain_mb, (recomputed_mb, plain_mb)


def _benchmark_peak_cpu_bytes():
    """The benchmarks' peak-memory probe (``benchmarks/memory.py``), one way of measuring for both."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "memory.py"
    spec = importlib.util.spec_from_file_location("tusk_benchmark_memory", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.peak_cpu_bytes
