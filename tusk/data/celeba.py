"""CelebA in the wild (unaligned) with the MAFL landmark splits (TUSK Sec. 4.3).

Expected layout (the files of the official CelebA and MAFL releases)::

    <root>/img_celeba/000001.jpg ...            # in-the-wild images (or <root>/Img/img_celeba/)
    <root>/Anno/list_landmarks_celeba.txt       # 5 landmarks per image, in-the-wild coordinates
    <root>/Anno/list_bbox_celeba.txt            # face boxes x_1 y_1 width height
    <root>/MAFL/training.txt, testing.txt       # MAFL splits, one image name per line
                                                # (or <root>/Eval/training.txt, testing.txt)

Protocol: only images whose face box covers at least ``min_face_fraction = 0.3`` of the image
are kept (following Liu et al. 2021 as the paper does). Splits: ``"train"`` = every kept
image except the MAFL test set (unsupervised training), ``"mafl_train"`` = the kept MAFL
training images (to fit the landmark regressor), ``"test"`` (alias ``"mafl_test"``) = the kept
MAFL test images. Images are resized to a square ``image_size`` (default 80, TUSK's; the
aspect ratio is not kept, as in TUSK), landmarks scaled per axis (pixel centres at integers).
The landmark order is CelebA's: left eye, right eye, nose, left mouth corner, right mouth
corner -- so the inter-ocular distance is between landmarks 0 and 1.

Image sizes (needed by the face filter) are read from the image headers once and kept in
``<root>/Anno/tusk_image_sizes.txt`` when the directory is writable.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ._common import as_size, check_index, scale_xy
from ._images import image_size, load_rgb
from .errors import DataFileError, missing_file

SPLITS = ("train", "mafl_train", "test", "mafl_test")
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "left_mouth", "right_mouth")


def _first_existing(candidates: list[Path], hint: str = "") -> Path:
    for path in candidates:
        if path.exists():
            return path
    raise missing_file(candidates[0], hint or "also looked for " + ", ".join(str(c) for c in candidates[1:]))


def read_annotation_table(path: Path, columns: int) -> dict[str, np.ndarray]:
    """A CelebA ``list_*.txt`` table (count line, header line, ``name v1 ... vn`` rows)."""
    if not path.is_file():
        raise missing_file(path)
    table = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            parts = line.split()
            if number <= 2 and (len(parts) != columns + 1 or not parts[0].lower().endswith((".jpg", ".png"))):
                continue  # the count and header lines
            if not parts:
                continue
            if len(parts) != columns + 1:
                raise DataFileError(
                    path, f"line {number}: expected a name and {columns} numbers, got {len(parts)} fields")
            try:
                table[parts[0]] = np.array([float(v) for v in parts[1:]], dtype=np.float32)
            except ValueError as exc:
                raise DataFileError(path, f"line {number}: {exc}") from exc
    return table


def _read_names(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [line.split()[0] for line in f if line.strip()]


class CelebA(Dataset):
    """CelebA in the wild + MAFL (see the module doc).

    Items: ``image [3, S, S]`` float32; ``landmarks [5, 2]`` float32 (x, y) pixels of the
    returned image; ``name`` the image file name.
    """

    def __init__(self, root: str | os.PathLike, split: str = "train", *, image_size=None,
                 length: int | None = None, min_face_fraction: float = 0.3):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        root = Path(root)
        self.root = root
        self.image_dir = _first_existing([root / "img_celeba", root / "Img" / "img_celeba"])
        landmarks = read_annotation_table(root / "Anno" / "list_landmarks_celeba.txt", 10)
        boxes = read_annotation_table(root / "Anno" / "list_bbox_celeba.txt", 4)
        mafl = _first_existing([root / "MAFL", root / "Eval"])
        mafl_test = set(_read_names(_first_existing([mafl / "testing.txt"])))
        if split == "train":
            names = [n for n in landmarks if n not in mafl_test]
        elif split == "mafl_train":
            names = _read_names(_first_existing([mafl / "training.txt"]))
        else:
            names = sorted(mafl_test)
        for n in names:
            if n not in landmarks:
                raise DataFileError(root / "Anno" / "list_landmarks_celeba.txt", f"no landmarks for {n}")
            if n not in boxes:
                raise DataFileError(root / "Anno" / "list_bbox_celeba.txt", f"no face box for {n}")
        sizes = self._image_sizes(names)
        keep = []
        for n in names:
            h, w = sizes[n]
            box = boxes[n]
            if box[2] * box[3] >= min_face_fraction * h * w:
                keep.append(n)
        if length is not None:
            keep = keep[: int(length)]
        self.names = keep
        self.landmarks = {n: landmarks[n].reshape(5, 2) for n in keep}
        self.sizes = {n: sizes[n] for n in keep}
        self.image_size = as_size(image_size, (80, 80))

    def _image_sizes(self, names: list[str]) -> dict[str, tuple[int, int]]:
        cache = self.root / "Anno" / "tusk_image_sizes.txt"
        sizes: dict[str, tuple[int, int]] = {}
        if cache.is_file():
            for name, values in read_annotation_table(cache, 2).items():
                sizes[name] = (int(values[0]), int(values[1]))
        missing = [n for n in names if n not in sizes]
        for n in missing:
            sizes[n] = image_size(self.image_dir / n)
        if missing:
            try:
                with open(cache, "a", encoding="utf-8") as f:
                    for n in missing:
                        f.write(f"{n} {sizes[n][0]} {sizes[n][1]}\n")
            except OSError:
                pass  # a read-only dataset directory: sizes are re-read next time
        return sizes

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> dict:
        name = self.names[check_index(index, len(self))]
        image, original = load_rgb(self.image_dir / name, self.image_size)
        if original != self.sizes[name]:
            raise DataFileError(self.image_dir / name, f"size {original} differs from the recorded {self.sizes[name]}")
        landmarks = scale_xy(self.landmarks[name], original, self.image_size)
        return {"image": torch.from_numpy(image), "landmarks": torch.from_numpy(landmarks), "name": name}
