"""Floating-point operations of one training step of each paper config, and what they imply.

For each packaged paper config, one :meth:`tusk.training.Trainer.train_step` (network step +
``sw_steps`` prototype steps) runs on random images of the config's size with a small batch of
``--pairs`` pairs under ``torch.utils.flop_counter.FlopCounterMode``, which counts the
convolutions and matrix products (forward and backward; the fused keypoint ops, elementwise
work and the optimiser are not counted: they are a few percent of a U-Net step). The count is
scaled linearly to the config's batch and to its full schedule (``train.steps``), and the
step's CPU wall time at the small batch is measured too (median of ``--repeats``).

Usage: ``python benchmarks/step_flops.py [--pairs 2] [--repeats 3] [--configs mnist_hard ...]``.
The GPU-hours in REPRODUCTION.md divide the schedule's FLOPs by an assumed sustained rate (see
there): an estimate, not a measurement.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from tusk.config import load_config
from tusk.losses.vgg import vgg16_trunk
from tusk.training import Trainer

PAPER_CONFIGS = ("mnist_hard", "tetrominoes", "clevr6", "celeba", "h36m")


def measure(name: str, pairs: int, repeats: int) -> dict:
    config = load_config(name)
    config.train.device = "cpu"
    full_batch, steps = config.train.batch_size, config.train.steps
    config.train.batch_size = pairs
    workdir = tempfile.mkdtemp(prefix=f"step_flops-{name}-")
    if config.loss.reconstruction == "perceptual":  # random VGG16 weights: same FLOPs as ImageNet ones
        config.loss.vgg_weights = os.path.join(workdir, "vgg16.pth")
        torch.save(vgg16_trunk().state_dict(), config.loss.vgg_weights)
    size = config.data.image_size
    torch.manual_seed(0)
    images = torch.rand(pairs, 3, size, size) * (torch.rand(pairs, 1, size, size) > 0.7)
    items = [{"image": image} for image in images]
    trainer = Trainer(config, workdir, train_set=items, test_set=items, progress=False)
    trainer.train_step(0, images)  # warm-up (allocations, kernel caches)
    with FlopCounterMode(display=False) as counter:
        trainer.train_step(1, images)
    flops = counter.get_total_flops()
    seconds = []
    for step in range(repeats):
        start = time.perf_counter()
        trainer.train_step(2 + step, images)
        seconds.append(time.perf_counter() - start)
    per_pair = flops / pairs
    return {
        "config": name, "image_size": size, "keypoints": config.model.keypoints,
        "alpha_blending": config.model.alpha_blending, "pairs_measured": pairs,
        "gflop_per_step_measured": flops / 1e9, "cpu_seconds_per_step_measured": statistics.median(seconds),
        "batch_pairs": full_batch, "steps": steps, "gflop_per_step": per_pair * full_batch / 1e9,
        "pflop_schedule": per_pair * full_batch * steps / 1e15,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--configs", nargs="+", default=list(PAPER_CONFIGS))
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    for name in args.configs:
        print(json.dumps(measure(name, args.pairs, args.repeats)), flush=True)


if __name__ == "__main__":
    main()
