"""sample_descriptors: tusk (C++) vs the reference, grid_sample, and the official integer gather."""
import pytest
import torch
import torch.nn.functional as F

from configs import CLEVR, MNIST, SUPERPOINT, SUPERPOINT_FULL, TETROMINOES
from tusk.ops import sample_descriptors, to_normalized

TARGETS_MS = {"clevr": 2.5, "superpoint": 60.0}


def official_gather(features, xy):
    """The official code's descriptor lookup: truncate coordinates to integers and index."""
    batch, channels = features.shape[:2]
    index = xy.long()
    b = torch.arange(batch, device=features.device)[:, None]
    return features[b, :, index[..., 1], index[..., 0]]  # [B, K, C]


def grid_sample_peer(features, xy):
    grid = to_normalized(xy, features.shape[-2:])[:, :, None]
    return F.grid_sample(features, grid, mode="bilinear", padding_mode="zeros", align_corners=True)[..., 0].transpose(1, 2)


IMPLS = {
    "tusk-cpp": lambda f, p: sample_descriptors(f, p, backend="cpp"),
    "reference": lambda f, p: sample_descriptors(f, p, backend="reference"),
    "grid_sample": grid_sample_peer,
    "official-gather": official_gather,
}


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("pass_", ["fwd", "fwd+bwd"])
@pytest.mark.parametrize("cfg", [MNIST, CLEVR, TETROMINOES, SUPERPOINT, SUPERPOINT_FULL], ids=lambda c: c.name)
def test_sample_descriptors(record, cfg, pass_, impl):
    height, width = cfg.descriptor_size
    features = torch.randn(cfg.batch, cfg.channels, height, width, requires_grad=pass_ != "fwd")
    xy = torch.rand(cfg.batch, cfg.k, 2) * torch.tensor([width - 1.0, height - 1.0])
    xy.requires_grad_(pass_ != "fwd" and impl != "official-gather")
    cotangent = torch.randn(cfg.batch, cfg.k, cfg.channels)
    fn = IMPLS[impl]

    if pass_ == "fwd":
        def step():
            with torch.no_grad():
                fn(features, xy)
    else:
        inputs = (features, xy) if xy.requires_grad else (features,)

        def step():
            torch.autograd.grad(fn(features, xy), inputs, cotangent)

    record(step, op="sample_descriptors", config=cfg.name, pass_=pass_, impl=impl,
           target_ms=TARGETS_MS.get(cfg.name) if pass_ == "fwd+bwd" and impl == "tusk-cpp" else None,
           rounds=5 if cfg is SUPERPOINT_FULL else None)
