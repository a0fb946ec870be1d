"""Datasets of the TUSK paper and their batching.

Every dataset is a ``torch.utils.data.Dataset`` of dicts with at least ``image``: float32
``[3, H, W]`` in [0, 1]. Coordinates are ``(x, y)`` pixels of the returned image with pixel
centres at integers. Generators (MNIST-Hard, Tetrominoes) are deterministic per
``(seed, index)``; readers load the published files (DeepMind multi-object TFRecords,
CelebA + MAFL, Human3.6M) without TensorFlow.

- :func:`build_dataset`: any dataset by name; :func:`collate`: batching.
- :class:`MnistHard`, :func:`load_scenes`, :func:`load_digits`, :func:`download_mnist`.
- :class:`Tetrominoes` (generated).
"""
from .collate import PER_OBJECT_KEYS, collate
from .errors import ChecksumError, DataFileError
from .mnist_digits import Digits, default_mnist_dir, download_mnist, load_digits, read_idx
from .mnist_hard import MnistHard, MnistHardScenes, load_scenes
from .registry import DATASETS, build_dataset
from .tetrominoes import COLORS, SHAPES, Tetrominoes

__all__ = [
    "COLORS", "DATASETS", "PER_OBJECT_KEYS", "SHAPES", "ChecksumError", "DataFileError", "Digits",
    "MnistHard", "MnistHardScenes", "Tetrominoes", "build_dataset", "collate", "default_mnist_dir",
    "download_mnist", "load_digits", "load_scenes", "read_idx",
]
