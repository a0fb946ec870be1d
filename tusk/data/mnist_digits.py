"""MNIST digit sources for MNIST-Hard: the four IDX files, an npz, or an opt-in download.

The package ships no digits (keeps the wheel small). Ways to get them, in order of
convenience:

1. ``download=True`` (or :func:`download_mnist`): fetches the four gzipped IDX files from a
   public mirror into :func:`default_mnist_dir` and verifies their MD5 checksums.
2. Without network: copy the four files (``train-images-idx3-ubyte[.gz]``,
   ``train-labels-idx1-ubyte[.gz]``, ``t10k-images-idx3-ubyte[.gz]``,
   ``t10k-labels-idx1-ubyte[.gz]``) from any machine that has them (for example a
   torchvision cache ``MNIST/raw/``) into a directory and pass it as ``root`` (or into
   :func:`default_mnist_dir`, or set ``TUSK_DATA``).
3. An npz with ``images [N, 28, 28]`` uint8 and ``labels [N]`` (any subset of MNIST), or the
   Keras cache ``mnist.npz`` (``x_train, y_train, x_test, y_test``).
"""
from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ChecksumError, DataFileError, missing_file

#: The four files of each split (without the ``.gz`` suffix).
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
#: MD5 of the published gzipped files.
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
#: Public mirrors tried in order (the original site often refuses scripted downloads).
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclass(frozen=True)
class Digits:
    """A pool of digits: ``images [N, 28, 28]`` uint8 (white on black), ``labels [N]`` int64."""

    images: np.ndarray
    labels: np.ndarray

    def __post_init__(self):
        images = np.ascontiguousarray(self.images)
        labels = np.ascontiguousarray(self.labels).astype(np.int64, copy=False)
        if images.ndim != 3 or images.dtype != np.uint8:
            raise ValueError(f"images must be uint8 [N, H, W], got {images.dtype} {images.shape}")
        if labels.shape != (images.shape[0],):
            raise ValueError(f"labels must be [N] = [{images.shape[0]}], got {labels.shape}")
        if images.shape[0] == 0:
            raise ValueError("the digit pool is empty")
        object.__setattr__(self, "images", images)
        object.__setattr__(self, "labels", labels)

    def __len__(self) -> int:
        return self.images.shape[0]


def default_mnist_dir() -> Path:
    """Where MNIST is looked for (and downloaded to) when no ``root`` is given:
    ``$TUSK_DATA/mnist`` if ``TUSK_DATA`` is set, else ``$XDG_CACHE_HOME/tusk/mnist``
    (``~/.cache/tusk/mnist``)."""
    if os.environ.get("TUSK_DATA"):
        return Path(os.environ["TUSK_DATA"]) / "mnist"
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "tusk" / "mnist"


def _open_maybe_gzip(path: Path):
    with open(path, "rb") as f:
        magic = f.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (gzipped or not, detected from its content) into a numpy array.

    Raises :class:`DataFileError` naming the file when it is truncated or not IDX.
    """
    path = Path(path)
    if not path.is_file():
        raise missing_file(path)
    try:
        with _open_maybe_gzip(path) as f:
            data = f.read()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataFileError(path, f"cannot decompress ({exc})") from exc
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise DataFileError(path, "not an IDX file (bad magic number)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise DataFileError(path, "truncated IDX header")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header != expected:
        raise DataFileError(
            path, f"truncated or oversized: header says shape {shape} ({expected} bytes), "
                  f"file holds {len(data) - header} bytes of data")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _find(directory: Path, name: str) -> Path:
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise missing_file(
        directory / f"{name}[.gz]",
        "copy the four MNIST IDX files there, or pass download=True where a network is available")


def load_mnist_idx(directory: str | os.PathLike, split: str = "train") -> Digits:
    """The digits of one MNIST split (``"train"``: 60k, ``"test"``: 10k) from IDX files."""
    if split not in MNIST_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    directory = Path(directory)
    image_path, label_path = (_find(directory, name) for name in MNIST_FILES[split])
    images, labels = read_idx(image_path), read_idx(label_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataFileError(image_path, f"expected uint8 images [N, H, W], got {images.dtype} {images.shape}")
    if labels.shape != (images.shape[0],):
        raise DataFileError(label_path, f"expected {images.shape[0]} labels (as {image_path.name}), got {labels.shape}")
    return Digits(images, labels)


#: In an npz with a single ``images``/``labels`` pool, digit ``i`` belongs to the test split
#: when ``i % NPZ_TEST_EVERY == NPZ_TEST_EVERY - 1`` (1/7 of the pool, like MNIST's 10k/70k),
#: else to train. Modulo rather than a contiguous cut so class-sorted files still split evenly.
NPZ_TEST_EVERY = 7


def load_digits_npz(path: str | os.PathLike, split: str | None = "train") -> Digits:
    """Digits from an npz: ``images``/``labels`` (split by :data:`NPZ_TEST_EVERY`; ``split=None``
    keeps all) or the Keras layout ``x_train, y_train, x_test, y_test``."""
    path = Path(path)
    if not path.is_file():
        raise missing_file(path)
    if split not in ("train", "test", None):
        raise ValueError(f"split must be 'train', 'test' or None, got {split!r}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            keys = set(npz.files)
            if {"images", "labels"} <= keys:
                images, labels = npz["images"], npz["labels"]
                if split is not None:
                    is_test = np.arange(len(images)) % NPZ_TEST_EVERY == NPZ_TEST_EVERY - 1
                    keep = is_test if split == "test" else ~is_test
                    images, labels = images[keep], labels[keep]
            elif {"x_train", "y_train", "x_test", "y_test"} <= keys:
                if split is None:
                    raise ValueError("split must be 'train' or 'test' for a Keras-layout mnist.npz")
                images, labels = npz[f"x_{split}"], npz[f"y_{split}"]
            else:
                raise DataFileError(path, f"expected arrays 'images' and 'labels', found {sorted(keys)}")
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataFileError(path, f"cannot read npz ({exc})") from exc
    except ValueError as exc:
        if isinstance(exc, DataFileError) or str(exc).startswith("split must"):
            raise
        raise DataFileError(path, f"cannot read npz ({exc})") from exc
    try:
        return Digits(np.asarray(images), np.asarray(labels))
    except ValueError as exc:
        raise DataFileError(path, str(exc)) from exc


def load_digits(source: str | os.PathLike | None = None, split: str = "train", *,
                download: bool = False) -> Digits:
    """Digits from a directory of IDX files or an npz file; ``None`` -> :func:`default_mnist_dir`.

    With ``download=True`` a directory missing the IDX files gets them via :func:`download_mnist`.
    """
    path = Path(source) if source is not None else default_mnist_dir()
    if path.is_file():
        return load_digits_npz(path, split)
    if download:
        try:
            return load_mnist_idx(path, split)
        except FileNotFoundError:
            download_mnist(path)
    return load_mnist_idx(path, split)


def _md5(path: Path) -> str:
    digest = hashlib.md5()  # integrity check against the published sums, not security
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _urlopen_fetch(url: str, dest: Path) -> None:
    with urllib.request.urlopen(url, timeout=60) as response, open(dest, "wb") as out:  # noqa: S310
        shutil.copyfileobj(response, out)


def download_mnist(directory: str | os.PathLike | None = None, *,
                   mirrors: Sequence[str] | None = None,
                   checksums: dict[str, str] | None = None,
                   fetch: Callable[[str, Path], None] | None = None) -> Path:
    """Download the four gzipped MNIST IDX files into ``directory`` and verify their MD5.

    Files already present with the right checksum are kept. Each file is fetched to a
    temporary name and moved into place only after its checksum matched; a mismatch on every
    mirror raises :class:`ChecksumError` naming the file. ``fetch(url, dest)`` replaces the
    HTTP client (tests); ``mirrors``/``checksums`` replace :data:`MNIST_MIRRORS` /
    :data:`MNIST_MD5`. Returns the directory.
    """
    directory = Path(directory) if directory is not None else default_mnist_dir()
    directory.mkdir(parents=True, exist_ok=True)
    mirrors = MNIST_MIRRORS if mirrors is None else mirrors
    checksums = dict(MNIST_MD5 if checksums is None else checksums)
    fetch = fetch or _urlopen_fetch
    for name, expected in checksums.items():
        target = directory / name
        if target.is_file() and _md5(target) == expected:
            continue
        errors = []
        for mirror in mirrors:
            url = mirror.rstrip("/") + "/" + name
            fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", dir=directory)
            os.close(fd)
            tmp = Path(tmp_name)
            try:
                fetch(url, tmp)
                actual = _md5(tmp)
                if actual != expected:
                    errors.append(ChecksumError(url, f"MD5 {actual} != expected {expected}"))
                    continue
                os.replace(tmp, target)
                break
            except OSError as exc:
                errors.append(exc)
            finally:
                tmp.unlink(missing_ok=True)
        else:
            checksum_errors = [e for e in errors if isinstance(e, ChecksumError)]
            detail = "; ".join(str(e) for e in errors) or "no mirror given"
            if checksum_errors:
                raise ChecksumError(target, f"no mirror gave the expected file: {detail}")
            raise OSError(f"could not download {name} into {directory}: {detail}")
    return directory
