"""``build_dataset(name, split, ...)``: one entry point for every dataset of the package."""
from __future__ import annotations

import os

from torch.utils.data import Dataset

from ._common import split_seed

#: Scenes per split of the generated datasets when ``length`` is not given (the paper's sizes).
DEFAULT_LENGTHS = {
    "mnist_hard": {"train": 50_000, "val": 10_000, "test": 50_000},
    "tetrominoes": {"train": 50_000, "val": 10_000, "test": 10_000},
}

DATASETS = ("mnist_hard", "tetrominoes", "clevr6", "celeba", "h36m")

#: The split on which the landmark regressor of :func:`tusk.eval.evaluate` is fitted.
REGRESSOR_SPLIT = {"celeba": "mafl_train", "h36m": "train"}


def _check_split(split: str) -> None:
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")


def build_dataset(name: str, split: str = "train", *, root: str | os.PathLike | None = None,
                  image_size=None, seed: int = 0, length: int | None = None, download: bool = False,
                  **kwargs) -> Dataset:
    """Build any dataset of the package by name.

    Args:
        name: ``"mnist_hard"``, ``"tetrominoes"``, ``"clevr6"``, ``"celeba"`` or ``"h36m"``.
        split: ``"train"``, ``"val"`` or ``"test"`` for the generators; readers take the
            splits their data defines: ``"train"``/``"test"`` (CLEVR6, Tetrominoes files,
            Human3.6M), ``"train"``/``"mafl_train"``/``"test"`` (CelebA; see
            :data:`REGRESSOR_SPLIT` for the split that fits the landmark regressor).
        root: where the data lives. ``mnist_hard``: a directory of MNIST IDX files or an npz
            of digits (default :func:`~tusk.data.mnist_digits.default_mnist_dir`);
            ``tetrominoes``: ``None`` generates scenes, a directory reads the published
            TFRecords; the others: required, see their classes.
        image_size: output size (int or ``(H, W)``); ``None`` = the dataset's default.
        seed: generators only; train/val/test use distinct streams derived from it.
        length: generators: number of scenes (default :data:`DEFAULT_LENGTHS`); readers:
            keep at most this many images.
        download: ``mnist_hard`` only: fetch MNIST when missing.
        **kwargs: passed to the dataset class.
    """
    if name in ("mnist_hard", "tetrominoes") and not (name == "tetrominoes" and root is not None):
        _check_split(split)
    if name == "mnist_hard":
        from .mnist_digits import load_digits
        from .mnist_hard import MnistHard

        digit_split = "test" if split == "test" else "train"
        digits = load_digits(root, digit_split, download=download)
        size = 80 if image_size is None else image_size
        n = DEFAULT_LENGTHS[name][split] if length is None else length
        return MnistHard(digits, n, image_size=size, seed=split_seed(seed, split), **kwargs)
    if name == "tetrominoes":
        if root is None:
            from .tetrominoes import Tetrominoes

            n = DEFAULT_LENGTHS[name][split] if length is None else length
            return Tetrominoes(n, image_size=image_size, seed=split_seed(seed, split), **kwargs)
        from .multi_object import TetrominoesRecords

        return TetrominoesRecords(root, split, image_size=image_size, length=length, **kwargs)
    if name == "clevr6":
        from .multi_object import Clevr6

        _require_root(name, root)
        return Clevr6(root, split, image_size=image_size, length=length, **kwargs)
    if name == "celeba":
        from .celeba import CelebA

        _require_root(name, root)
        return CelebA(root, split, image_size=image_size, length=length, **kwargs)
    if name == "h36m":
        from .h36m import H36M

        _require_root(name, root)
        return H36M(root, split, image_size=image_size, length=length, **kwargs)
    raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")


def _require_root(name: str, root) -> None:
    if root is None:
        raise ValueError(f"dataset {name!r} reads published files: pass root=<directory>")
