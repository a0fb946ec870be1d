"""Datasets for training and evaluation, and a data order that depends only on the step.

Batch ``s`` holds positions ``s*B .. s*B + B - 1`` of an endless stream in which epoch ``e``
is a permutation of the dataset drawn from ``(seed, e)``. A run resumed at step ``s`` therefore
sees exactly the batches an uninterrupted run would, with no iterator state to save.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from .. import data as tusk_data
from ..config import DataConfig
from ..data import collate
from .squares import Squares

#: Test-split length used for procedural datasets when the config gives none.
DEFAULT_TEST_LENGTH = 256


def build_dataset(config: DataConfig, split: str) -> torch.utils.data.Dataset:
    """The ``split`` of the configured dataset.

    ``squares`` is built here; every other name goes to :func:`tusk.data.build_dataset`.

    Raises:
        FileNotFoundError / ValueError: from the dataset readers (missing or bad files).
    """
    length = config.train_length if split == "train" else config.test_length
    if config.dataset == "squares":
        size = config.image_size or 24
        return Squares(length or (4096 if split == "train" else DEFAULT_TEST_LENGTH), image_size=size,
                       split=split, seed=config.seed)
    return tusk_data.build_dataset(config.dataset, split, root=config.root, image_size=config.image_size,
                                   seed=config.seed, length=length, download=config.download,
                                   **protocol_arguments(config))


def protocol_arguments(config: DataConfig) -> dict[str, Any]:
    """The data-protocol settings of ``config`` that ``tusk.data.build_dataset`` takes: only
    those given, so datasets without a protocol choice build as before."""
    values = {"split_records": config.split_records, "split_train": config.split_train,
              "split_test": config.split_test, "resize": config.resize}
    arguments = {k: v for k, v in values.items() if v is not None}
    if config.dataset in ("clevr6", "tetrominoes"):
        arguments["protocol"] = config.protocol
    return arguments


class StepBatches(torch.utils.data.Sampler):
    """Batch sampler yielding the index lists of steps ``start .. stop - 1`` (see module doc)."""

    def __init__(self, length: int, batch_size: int, seed: int, start: int, stop: int) -> None:
        if length < 1:
            raise ValueError("the training dataset is empty")
        self.length, self.batch_size, self.seed = length, batch_size, seed
        self.start, self.stop = start, stop
        self._epoch, self._order = -1, np.empty(0, dtype=np.int64)

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch != self._epoch:
            rng = np.random.default_rng([self.seed, epoch, 0x5EED])
            self._epoch, self._order = epoch, rng.permutation(self.length)
        return self._order

    def indices(self, step: int) -> list[int]:
        positions = range(step * self.batch_size, (step + 1) * self.batch_size)
        return [int(self._permutation(p // self.length)[p % self.length]) for p in positions]

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start, self.stop):
            yield self.indices(step)


def training_batches(dataset, batch_size: int, seed: int, start: int, stop: int,
                     num_workers: int = 0) -> torch.utils.data.DataLoader:
    """Loader over steps ``start .. stop - 1`` (one batch of ``batch_size`` items per step)."""
    sampler = StepBatches(len(dataset), batch_size, seed, start, stop)
    return torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=collate,
                                       num_workers=num_workers, persistent_workers=False)


def first_items(dataset, count: int, batch_size: int = 32) -> Iterator[dict[str, Any]]:
    """The first ``count`` items of ``dataset`` in order, collated ``batch_size`` at a time."""
    count = min(count, len(dataset))
    for start in range(0, count, batch_size):
        yield collate([dataset[i] for i in range(start, min(count, start + batch_size))])
