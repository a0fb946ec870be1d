"""``build_dataset(name, split, ...)``: one entry point for every dataset of the package."""
from __future__ import annotations

import os

from torch.utils.data import Dataset

from ._common import split_seed
from .mist import is_mist_dir

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
                  protocol: str | None = None, split_records: int | None = None, split_train: int | None = None,
                  split_test: int | None = None, resize: str | None = None, **kwargs) -> Dataset:
    """Build any dataset of the package by name.

    Args:
        name: ``"mnist_hard"``, ``"tetrominoes"``, ``"clevr6"``, ``"celeba"`` or ``"h36m"``.
        split: ``"train"``, ``"val"`` or ``"test"`` for the generators; readers take the
            splits their data defines: ``"train"``/``"test"`` (CLEVR6, Tetrominoes files,
            Human3.6M), ``"train"``/``"mafl_train"``/``"test"`` (CelebA; see
            :data:`REGRESSOR_SPLIT` for the split that fits the landmark regressor).
        root: where the data lives. ``mnist_hard``: the published MIST ``mnist_hard``
            directory (``{split}.txt``, ``{split}_labels.txt``, ``{split}_keypoints.npy``
            and the images: :class:`~tusk.data.mist.MistMnistHard`), or digits for the
            generator: a directory of MNIST IDX files or an npz of digits (default
            :func:`~tusk.data.mnist_digits.default_mnist_dir`); ``tetrominoes``: ``None``
            generates scenes, a directory reads the published TFRecords; the others:
            required, see their classes.
        image_size: output size (int or ``(H, W)``); ``None`` = the dataset's default.
        seed: generators only; train/val/test use distinct streams derived from it.
        length: generators: number of scenes (default :data:`DEFAULT_LENGTHS`); readers:
            keep at most this many images.
        download: ``mnist_hard`` only: fetch MNIST when missing.
        protocol, split_records, split_train, split_test: the split of the DeepMind files
            (``clevr6``, ``tetrominoes`` records; see :mod:`tusk.data.record_splits`).
        resize: ``"smooth"`` or ``"nearest"`` (``tetrominoes``, ``clevr6`` and the MIST
            reader; the others only resize smoothly). None = ``"smooth"``.
        **kwargs: passed to the dataset class.
    """
    splits = {"records": split_records, "train_scenes": split_train, "test_scenes": split_test}
    reads_records = name == "clevr6" or (name == "tetrominoes" and root is not None)
    if not reads_records:
        given = [f"split_{k.split('_')[0]}" for k, v in splits.items() if v is not None]
        if given:
            raise ValueError(f"{', '.join(given)}: split sizes apply to the DeepMind records (clevr6, tetrominoes "
                             f"read from files), not to {name!r}" + (" (use train_length/test_length)"
                                                                    if name in DEFAULT_LENGTHS else ""))
    if resize not in (None, "smooth") and not (reads_records or name == "tetrominoes"
                                               or (name == "mnist_hard" and is_mist_dir(root))):
        raise ValueError(f"resize {resize!r}: {name!r} resizes smoothly only (nearest: tetrominoes, clevr6, "
                         "the published MNIST-Hard files)")
    if name in ("mnist_hard", "tetrominoes") and not (name == "tetrominoes" and root is not None):
        _check_split(split)
    if name == "mnist_hard" and is_mist_dir(root):
        from .mist import MistMnistHard

        return MistMnistHard(root, split, image_size=80 if image_size is None else image_size, length=length,
                             resize=resize, **kwargs)
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
            return Tetrominoes(n, image_size=image_size, seed=split_seed(seed, split), resize=resize, **kwargs)
        from .multi_object import TetrominoesRecords

        return TetrominoesRecords(root, split, image_size=image_size, length=length, protocol=protocol,
                                  resize=resize, **splits, **kwargs)
    if name == "clevr6":
        from .multi_object import Clevr6

        _require_root(name, root)
        return Clevr6(root, split, image_size=image_size, length=length, protocol=protocol, resize=resize,
                      **splits, **kwargs)
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
