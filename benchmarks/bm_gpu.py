"""Every op, forward and forward+backward, on the GPU: tusk's CUDA and Triton kernels against the
eager reference and ``torch.compile`` of the reference, at the paper configs, SuperPoint and a
large case (B=32, 256x256, K=512, C=64), with achieved bandwidth against a measured ``copy_``.

    pytest benchmarks/bm_gpu.py --benchmark-json=gpu.json      # then benchmarks/gpu/summarize.py

Without a GPU the same harness runs the ``cpp`` backend against the reference on CPU for the two
small configs, so the harness itself is exercised everywhere; GPU-only rows skip with
"needs a CUDA GPU". Targets and how to read the numbers: benchmarks/gpu/README.md.

Per op the inputs follow TUSK's use: heatmaps [B,1,H,W] with NMS = soft-argmax window = the
config's window; descriptors sampled from the (SuperPoint: 1/8-resolution) feature map; splats of
the K descriptors at (H, W) with variance 0.05; compositing of min(K, 16) RGB renderings (K
full-resolution RGB maps of SuperPoint's K=2048 would be 60 GB); sliced Wasserstein between the
B*K descriptors and as many GMM samples with 100 projections; the prototype GMM with the config's
prototypes (64 where the config has none).
"""
from __future__ import annotations

import pytest
import torch

import tusk.ops as tops
from configs import CLEVR, MNIST, SUPERPOINT, TETROMINOES, Config
from gpu.timing import copy_bandwidth_gbps, device_ms, synchronized
from gpu.traffic import op_bytes
from tusk.ops.splat_gaussians import default_radius

HAS_GPU = torch.cuda.is_available()
DEVICE = torch.device("cuda" if HAS_GPU else "cpu")
needs_gpu = pytest.mark.skipif(not HAS_GPU, reason="needs a CUDA GPU")

LARGE = Config("large", batch=32, height=256, width=256, channels=64, k=512, window=5, prototypes=64)
COMPOSITE_K = 16
PROJECTIONS = 100
TEMPERATURE = 0.2

# Small configs run everywhere; the rest are sized for GPU memory and time.
CONFIGS = [pytest.param(c, id=c.name) for c in (MNIST, CLEVR)]
CONFIGS += [pytest.param(c, id=c.name, marks=needs_gpu) for c in (TETROMINOES, SUPERPOINT, LARGE)]

# On CPU: cpp vs reference. On a GPU: cuda, triton, reference, compile (of the reference).
GPU_IMPLS = ("cuda", "triton", "reference", "compile")
if HAS_GPU:
    IMPLS = [pytest.param(i, id=i) for i in GPU_IMPLS]
else:
    IMPLS = [pytest.param("cpp", id="cpp"), pytest.param("reference", id="reference")]
    IMPLS += [pytest.param(i, id=i, marks=needs_gpu) for i in ("cuda", "triton", "compile")]


# ---- inputs and calls per op ----------------------------------------------------------------------

def _rand(*shape, scale=1.0, grad=False):
    return (torch.rand(*shape, device=DEVICE) * scale).requires_grad_(grad)


def _randn(*shape, grad=False):
    return torch.randn(*shape, device=DEVICE).requires_grad_(grad)


def _points(b, k, height, width, grad):
    return (torch.rand(b, k, 2, device=DEVICE) * torch.tensor([width - 1.0, height - 1.0], device=DEVICE)).requires_grad_(grad)


def make_detect(cfg, grad):
    inputs = {"scores": _rand(cfg.batch, 1, cfg.height, cfg.width, grad=grad)}

    def call(backend, scores):
        out = tops.detect_keypoints(scores, cfg.k, nms_size=cfg.window, window=cfg.window,
                                    temperature=TEMPERATURE, backend=backend)
        return out.xy, out.score

    return inputs, call


def make_sample(cfg, grad):
    height, width = cfg.descriptor_size
    inputs = {"features": _randn(cfg.batch, cfg.channels, height, width, grad=grad),
              "xy": _points(cfg.batch, cfg.k, height, width, grad)}
    return inputs, lambda backend, features, xy: (tops.sample_descriptors(features, xy, backend=backend),)


def make_splat(cfg, grad):
    inputs = {"xy": _points(cfg.batch, cfg.k, cfg.height, cfg.width, grad),
              "descriptors": _randn(cfg.batch, cfg.k, cfg.channels, grad=grad),
              "weights": _rand(cfg.batch, cfg.k, grad=grad)}

    def call(backend, xy, descriptors, weights):
        return (tops.splat_gaussians(xy, descriptors, weights, (cfg.height, cfg.width), variance=cfg.variance,
                                     backend=backend),)

    return inputs, call


def make_composite(cfg, grad):
    k = min(cfg.k, COMPOSITE_K)
    inputs = {"rgb": _randn(cfg.batch, k, 3, cfg.height, cfg.width, grad=grad),
              "alpha_logits": _randn(cfg.batch, k, 1, cfg.height, cfg.width, grad=grad)}
    return inputs, lambda backend, rgb, alpha_logits: tops.alpha_composite(rgb, alpha_logits, backend=backend)


def make_sliced(cfg, grad):
    n = cfg.batch * cfg.k
    theta = torch.nn.functional.normalize(torch.randn(cfg.channels, PROJECTIONS, device=DEVICE), dim=0)
    inputs = {"x": _randn(n, cfg.channels, grad=grad), "y": _randn(n, cfg.channels, grad=grad), "projections": theta}
    return inputs, lambda backend, x, y, projections: (tops.sliced_wasserstein(x, y, projections=projections, backend=backend),)


def make_gmm(cfg, grad):
    m = cfg.prototypes or 64
    protos = torch.nn.functional.normalize(torch.randn(m, cfg.channels, device=DEVICE), dim=-1).requires_grad_(grad)
    inputs = {"prototypes": protos, "features": _randn(cfg.batch * cfg.k, cfg.channels)}
    return inputs, lambda backend, prototypes, features: (tops.gmm_prototype_samples(prototypes, features, backend=backend),)


OPS = {
    "detect_keypoints": make_detect,
    "sample_descriptors": make_sample,
    "splat_gaussians": make_splat,
    "alpha_composite": make_composite,
    "sliced_wasserstein": make_sliced,
    "gmm_prototype_samples": make_gmm,
}


def reference_gib(op: str, cfg: Config, pass_: str) -> float:
    """Rough peak memory of the eager reference (its dense intermediates), in GiB."""
    factor = 1 if pass_ == "fwd" else 3
    if op == "splat_gaussians":  # [B, K, H, W] Gaussians, a few live copies
        return factor * 4 * cfg.batch * cfg.k * cfg.height * cfg.width * 4 / 2**30
    if op == "gmm_prototype_samples":  # [N, M, C] float64 distances
        return 3 * cfg.batch * cfg.k * (cfg.prototypes or 64) * cfg.channels * 8 / 2**30
    if op == "alpha_composite":
        return factor * 4 * cfg.batch * min(cfg.k, COMPOSITE_K) * 4 * cfg.height * cfg.width * 4 / 2**30
    return 0.0


@pytest.fixture(scope="session")
def copy_gbps():
    return copy_bandwidth_gbps(DEVICE)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("pass_", ["fwd", "fwd+bwd"])
@pytest.mark.parametrize("cfg", CONFIGS)
@pytest.mark.parametrize("op", list(OPS))
def test_gpu(benchmark, copy_gbps, op, cfg, pass_, impl):
    if impl in ("reference", "compile") and DEVICE.type == "cuda":
        need = reference_gib(op, cfg, pass_)
        have = torch.cuda.get_device_properties(DEVICE).total_memory / 2**30
        if need > 0.5 * have:
            pytest.skip(f"the reference would need ~{need:.0f} GiB of the GPU's {have:.0f} GiB")
    torch.manual_seed(0)
    grad = pass_ == "fwd+bwd"
    inputs, call = OPS[op](cfg, grad)
    backend = "reference" if impl == "compile" else impl
    fn = lambda **kw: call(backend, **kw)  # noqa: E731
    if impl == "compile":
        torch._dynamo.reset()  # a fresh cache: never fall back to eager after too many recompiles
        fn = torch.compile(fn)
    outputs = fn(**inputs)  # also compiles, for impl == "compile"
    if grad:
        leaves = [t for t in inputs.values() if t.requires_grad]
        diff = [o for o in outputs if o.requires_grad]
        cotangents = [torch.randn_like(o) for o in diff]

        def step():
            with torch.enable_grad():
                out = [o for o in fn(**inputs) if o.requires_grad]
                torch.autograd.grad(out, leaves, cotangents)
    else:
        def step():
            with torch.no_grad():
                fn(**inputs)

    ms = device_ms(step, DEVICE, budget_ms=100.0)
    moved = op_bytes(op, pass_, inputs, tuple(o.detach() for o in outputs), radius=default_radius(cfg.variance))
    gbps = moved / (ms * 1e-3) / 1e9
    benchmark.group = f"{op} | {cfg.name} | {pass_}"
    benchmark.extra_info.update(
        op=op, config=cfg.name, pass_=pass_, impl=impl, device=torch.cuda.get_device_name(DEVICE) if HAS_GPU else "cpu",
        device_ms=ms, bytes=moved, gbps=gbps, copy_gbps=copy_gbps, fraction_of_copy=gbps / copy_gbps,
        torch=torch.__version__, threads=torch.get_num_threads(),
    )
    rounds = max(3, min(20, int(150.0 / max(ms, 1e-3))))
    benchmark.pedantic(synchronized(step, DEVICE), rounds=rounds, iterations=1, warmup_rounds=1)
