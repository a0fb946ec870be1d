"""Datasets of the TUSK paper and their batching.

Every dataset is a ``torch.utils.data.Dataset`` of dicts with at least ``image``: float32
``[3, H, W]`` in [0, 1]. Coordinates are ``(x, y)`` pixels of the returned image with pixel
centres at integers. Generators (MNIST-Hard, Tetrominoes) are deterministic per
``(seed, index)``; readers load the published files (DeepMind multi-object TFRecords,
CelebA + MAFL, Human3.6M) without TensorFlow.

- :func:`build_dataset`: any dataset by name; :func:`collate`: batching.
- :class:`MnistHard`, :func:`load_scenes`, :func:`load_digits`, :func:`download_mnist`;
  :class:`MistMnistHard` reads the published MNIST-Hard files (MIST release).
- :class:`Tetrominoes` (generated).
- Readers: :class:`Clevr6`, :class:`TetrominoesRecords` (DeepMind TFRecords),
  :class:`CelebA` (+ MAFL), :class:`H36M`.
"""
from .collate import PER_OBJECT_KEYS, collate
from .errors import ChecksumError, DataFileError
from .mnist_digits import Digits, default_mnist_dir, download_mnist, load_digits, read_idx
from .mnist_hard import MnistHard, MnistHardScenes, load_scenes
from .mist import MistMnistHard
from .registry import DATASETS, REGRESSOR_SPLIT, build_dataset
from .tetrominoes import COLORS, SHAPES, Tetrominoes
from .multi_object import Clevr6, TetrominoesRecords
from .celeba import CelebA
from .h36m import H36M, H36M_SWAP_PAIRS

__all__ = [
    "COLORS", "DATASETS", "REGRESSOR_SPLIT", "PER_OBJECT_KEYS", "SHAPES", "CelebA", "ChecksumError", "Clevr6",
    "DataFileError", "Digits", "H36M", "H36M_SWAP_PAIRS", "MistMnistHard", "TetrominoesRecords",
    "MnistHard", "MnistHardScenes", "Tetrominoes", "build_dataset", "collate", "default_mnist_dir",
    "download_mnist", "load_digits", "load_scenes", "read_idx",
]
