"""alpha_composite: tusk (C++, fused, softmax recomputed in backward) vs the reference and the
official code's softmax-multiply-sum."""
import pytest
import torch

from configs import CLEVR, TETROMINOES
from tusk.ops import alpha_composite

TARGETS_MS = {"clevr": 6.0}
RGB_CHANNELS = 3


def official_dense(rgb, alpha_logits):
    """The official decoder's blend: softmax over keypoints, multiply, sum over keypoints."""
    alpha = torch.softmax(alpha_logits, dim=1)
    return (rgb * alpha).sum(dim=1), alpha


IMPLS = {
    "tusk-cpp": lambda rgb, logits: alpha_composite(rgb, logits, backend="cpp"),
    "reference": lambda rgb, logits: alpha_composite(rgb, logits, backend="reference"),
    "official-dense": official_dense,
}


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("pass_", ["fwd", "fwd+bwd"])
@pytest.mark.parametrize("cfg", [CLEVR, TETROMINOES], ids=lambda c: c.name)
def test_alpha_composite(record, cfg, pass_, impl):
    requires_grad = pass_ != "fwd"
    rgb = torch.randn(cfg.batch, cfg.k, RGB_CHANNELS, cfg.height, cfg.width, requires_grad=requires_grad)
    logits = torch.randn(cfg.batch, cfg.k, 1, cfg.height, cfg.width, requires_grad=requires_grad)
    fn = IMPLS[impl]
    if pass_ == "fwd":
        def step():
            with torch.no_grad():
                fn(rgb, logits)
    else:
        # The reconstruction loss sees the image only; alpha (the object masks) is not
        # differentiated, as in training.
        cotangent = torch.randn(cfg.batch, RGB_CHANNELS, cfg.height, cfg.width)

        def step():
            torch.autograd.grad(fn(rgb, logits)[0], (rgb, logits), cotangent)

    record(step, op="alpha_composite", config=cfg.name, pass_=pass_, impl=impl, memory=True,
           target_ms=TARGETS_MS.get(cfg.name) if pass_ == "fwd+bwd" and impl == "tusk-cpp" else None)
