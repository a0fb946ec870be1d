"""Dataset throughput: MNIST-Hard and Tetrominoes generation, images/s.

Target: >= 2,000 images/s on 2 cores so data never starves CPU training. Each generator is
measured in one process and through a 2-worker DataLoader with ``tusk.data.collate`` (the
way training consumes it). ``extra_info["images_per_s"]`` holds the rate.
"""
import numpy as np
import pytest
import torch

from tusk.data import MnistHard, Tetrominoes, collate

TARGET_IMAGES_PER_S = 2000.0
N_ITEMS = 1024


def _digit_pool(n=1000, seed=0):
    """Random 28x28 'digits': generation cost does not depend on the strokes."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 28, 28), np.uint8)
    images[:, 4:24, 4:24] = rng.integers(0, 256, (n, 20, 20), dtype=np.uint8)
    return images, rng.integers(0, 10, n)


DATASETS = {
    "mnist_hard-80": lambda: MnistHard(_digit_pool(), N_ITEMS),
    "tetrominoes-35": lambda: Tetrominoes(N_ITEMS),
    "tetrominoes-112": lambda: Tetrominoes(N_ITEMS, image_size=112),
}


def _loop(ds):
    def run():
        for i in range(len(ds)):
            ds[i]
    return run


def _loader(ds):
    loader = torch.utils.data.DataLoader(ds, batch_size=64, num_workers=2, collate_fn=collate,
                                         persistent_workers=True)

    def run():
        for _ in loader:
            pass
    return run


@pytest.mark.parametrize("mode", ["1-process", "loader-2-workers"])
@pytest.mark.parametrize("name", list(DATASETS))
def test_data_throughput(record, benchmark, name, mode):
    ds = DATASETS[name]()
    fn = _loop(ds) if mode == "1-process" else _loader(ds)
    record(fn, op="data", config=name, pass_=mode, impl="tusk",
           target_ms=1000.0 * N_ITEMS / TARGET_IMAGES_PER_S, rounds=5)
    benchmark.extra_info["images_per_s"] = N_ITEMS / benchmark.stats.stats.median
