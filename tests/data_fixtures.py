"""Small synthetic data files for the data tests (no test reads anything outside the repo)."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

BLOCK = 10  # side of the square each synthetic digit draws in its patch centre


def class_intensity(label: int) -> int:
    return 60 + 19 * label  # distinct per class, all > 0


def synthetic_digits(per_class: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """``(images [N, 28, 28] uint8, labels [N])``: digit ``c`` is a centred 10x10 square of
    intensity :func:`class_intensity` (so a pixel tells the class)."""
    labels = np.repeat(np.arange(10), per_class)
    images = np.zeros((len(labels), 28, 28), dtype=np.uint8)
    lo = (28 - BLOCK) // 2
    for i, c in enumerate(labels):
        images[i, lo:lo + BLOCK, lo:lo + BLOCK] = class_intensity(int(c))
    return images, labels


def idx_bytes(array: np.ndarray) -> bytes:
    codes = {np.dtype(np.uint8): 0x08}
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + b"".join(
        struct.pack(">I", d) for d in array.shape)
    return header + array.tobytes()


def write_mnist_dir(directory: Path, *, gz: bool = True, per_class: int = 3) -> Path:
    """The four MNIST IDX files (train and t10k) of synthetic digits in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    images, labels = synthetic_digits(per_class)
    files = {
        "train-images-idx3-ubyte": images, "train-labels-idx1-ubyte": labels.astype(np.uint8),
        "t10k-images-idx3-ubyte": images[::-1].copy(), "t10k-labels-idx1-ubyte": labels[::-1].astype(np.uint8),
    }
    for name, array in files.items():
        data = idx_bytes(array)
        if gz:
            (directory / f"{name}.gz").write_bytes(gzip.compress(data, mtime=0))
        else:
            (directory / name).write_bytes(data)
    return directory
