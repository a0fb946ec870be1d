"""One TUSK training step (MNIST-Hard config, batch of 8 pairs = 16 images of 80x80: the
network step plus the 5 prototype steps), tusk versus the official code's way.

- ``tusk``: :meth:`tusk.training.Trainer.train_step` on the default op backend (``auto``: the
  fused C++ kernels on CPU, CUDA/Triton on a GPU);
- ``tusk-checkpoint``: ``tusk`` with ``model.checkpoint: true`` (the U-Nets recompute their
  activations in backward);
- ``tusk-reference``: the same step on the reference ops (attributes the gain: step structure
  versus kernels);
- ``official``: the same network, pairs and losses, with the official code's dense ops and
  step structure (:mod:`official_step`: dense soft-argmax convolutions, integer descriptor
  gather, dense ``[B, K, C, H, W]`` splat, Python-loop GMM, encoder re-run with autograd in
  each prototype step).

Targets (per the project brief): tusk >= 2x faster and <= 1/2 the peak memory of official.
Run: ``pytest benchmarks/bm_train_step.py --benchmark-only`` (or ``python
benchmarks/bm_train_step.py`` for a quick table).
"""
from __future__ import annotations

import copy
import os
import sys
import tempfile
import time

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))

from memory import peak_cpu_bytes  # noqa: E402
from official_step import official_step  # noqa: E402

from tusk import ops  # noqa: E402
from tusk.config import load_config  # noqa: E402
from tusk.training import Trainer  # noqa: E402
from tusk.training.pairs import make_pairs  # noqa: E402
from tusk.training.seeding import step_generator  # noqa: E402

PAIRS = 8
CONFIG = "mnist_hard-b8"


def _setup(device: str = "cpu", checkpoint: bool = False):
    config = load_config("mnist_hard")
    config.model.checkpoint = checkpoint
    config.train.batch_size = PAIRS
    config.train.device = device
    torch.manual_seed(0)
    images = torch.rand(PAIRS, 3, 80, 80) * (torch.rand(PAIRS, 1, 80, 80) > 0.8)  # sparse strokes
    items = [{"image": image} for image in images]
    trainer = Trainer(config, tempfile.mkdtemp(prefix="bm_train_step-"), train_set=items, test_set=items,
                      progress=False)
    return trainer, images.to(device)


def make_step(impl: str, device: str = "cpu"):
    trainer, images = _setup(device, checkpoint=impl == "tusk-checkpoint")
    if impl in ("tusk", "tusk-checkpoint", "tusk-reference"):
        backend = "reference" if impl == "tusk-reference" else None

        def step():
            with ops.use_backend(backend):
                trainer.train_step(0, images)
        return step
    model = copy.deepcopy(trainer.model)
    optimizer = torch.optim.Adam(list(model.encoder.parameters()) + list(model.decoder.parameters()), lr=1e-3)
    prototype_optimizer = torch.optim.Adam([model.prototypes], lr=0.1, betas=(0.5, 0.999))
    cfg = trainer.config

    def step():
        pairs = make_pairs(images, cfg.loss.tps, cfg.loss.augment, step_generator(0, 0, "pairs"))
        official_step(model, optimizer, prototype_optimizer, pairs, cfg.loss, cfg.train.sw_steps)
    return step


@pytest.mark.parametrize("impl", ["tusk", "tusk-checkpoint", "tusk-reference", "official"])
def test_train_step(record, impl):
    targets = {}
    if impl in ("tusk", "tusk-checkpoint"):
        targets = dict(baseline="official", target_speedup=2.0, target_memory_fraction=0.5)
    record(make_step(impl), op="train_step", config=CONFIG, pass_="fwd+bwd", impl=impl,
           memory=True, rounds=3, **targets)


if __name__ == "__main__":
    for impl in ("tusk", "tusk-checkpoint", "tusk-reference", "official"):
        try:
            step = make_step(impl)
            step()
        except (RuntimeError, NotImplementedError) as err:
            print(f"{impl:15s} unavailable: {str(err).splitlines()[0][:100]}")
            continue
        start = time.perf_counter()
        step()
        seconds = time.perf_counter() - start
        peak = peak_cpu_bytes(step) / 2**20
        print(f"{impl:15s} {seconds * 1000:9.1f} ms   peak {peak:8.1f} MiB")
