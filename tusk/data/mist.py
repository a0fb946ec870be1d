"""The published MNIST-Hard benchmark: the ``mnist_hard`` directory released with MIST.

TUSK (Sec. 4.1) trains and tests on these files, not on freshly generated scenes
(:class:`~tusk.data.MnistHard` generates equivalent ones). Layout, per split (``train``,
``test``; any split name whose three files exist is readable)::

    <root>/{split}.txt             # image file names, one per line, relative to <root>
    <root>/{split}_labels.txt      # comma-separated digit labels, one line per image
    <root>/{split}_keypoints.npy   # [N, D, 3] float: x, y, half the box side per digit,
                                   # in pixels of the stored image (box = centre +- half)
    <root>/<image files>           # RGB (or grey) PNGs, any stored size

Line ``i`` of the three files describes the same image; ``D`` (9 in the release) digits per
image. Images are resized to ``image_size`` (``"smooth"``: area averaging when shrinking,
bilinear when enlarging; or ``"nearest"``) and centres and boxes scaled with them.

Coordinate convention: the package's (pixel centres at integers), so resizing maps
``x -> (x + 0.5) * s - 0.5``. MIST's own loader multiplies by ``s``; the release does not
document which origin its keypoints use, and the two agree exactly when the stored size is
the training size (80 px in the paper), differing by ``0.5 * (s - 1)`` px otherwise.

Errors name the file: a missing or undecodable image, a line-count mismatch between the three
files, a label line with the wrong number of digits.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ._common import as_size, check_index, check_resize, resize_image, resize_nearest, scale_xy
from ._images import load_rgb
from .errors import DataFileError, missing_file
from .mnist_hard import CANVAS

#: The three files of a split, by role.
SPLIT_FILES = {"images": "{split}.txt", "labels": "{split}_labels.txt", "keypoints": "{split}_keypoints.npy"}
#: Where the release is published (linked from the MIST and TUSK READMEs); unzip it and pass
#: the ``mnist_hard`` directory it holds.
MIST_URL = "https://www.cs.ubc.ca/research/kmyi_data/files/2021/mist/mnist_hard.zip"
MIST_DOWNLOAD = f"download and unzip {MIST_URL}"


def split_files(root: str | os.PathLike, split: str) -> dict[str, Path]:
    """The three files of ``split`` under ``root`` (whether or not they exist)."""
    root = Path(root)
    return {role: root / pattern.format(split=split) for role, pattern in SPLIT_FILES.items()}


def is_mist_dir(root: str | os.PathLike | None) -> bool:
    """True when ``root`` is a directory holding the MIST listing of a ``train`` or ``test``
    split (``{split}.txt`` and ``{split}_keypoints.npy``); MNIST IDX files or an npz of digits
    are something else (the digits of the generator)."""
    if root is None or not os.path.isdir(root):
        return False
    return any(all(split_files(root, split)[role].is_file() for role in ("images", "keypoints"))
               for split in ("train", "test"))


def _lines(path: Path) -> list[str]:
    """Non-empty lines of a text file (a trailing newline or blank last line is not an entry)."""
    if not path.is_file():
        raise missing_file(path, f"a MIST mnist_hard directory needs it; {MIST_DOWNLOAD}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataFileError(path, f"cannot read ({exc})") from exc
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            raise DataFileError(path, f"line {number} is empty")
    return [line.strip() for line in lines]


def _labels(path: Path, count: int) -> np.ndarray:
    lines = _lines(path)
    if len(lines) != count:
        raise DataFileError(path, f"{len(lines)} lines but the image list has {count}")
    rows = []
    for number, line in enumerate(lines, start=1):
        try:
            rows.append([int(v) for v in line.split(",")])
        except ValueError:
            raise DataFileError(path, f"line {number}: expected comma-separated integers, got {line!r}") from None
    widths = {len(r) for r in rows}
    if len(widths) > 1:
        first = len(rows[0])
        bad = next(i for i, r in enumerate(rows) if len(r) != first)
        raise DataFileError(path, f"line {bad + 1} has {len(rows[bad])} labels, line 1 has {first}")
    labels = np.array(rows, dtype=np.int64).reshape(count, -1)
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataFileError(path, f"digit labels must lie in 0..9, found {labels.min()}..{labels.max()}")
    return labels


def _keypoints(path: Path, count: int, digits: int) -> np.ndarray:
    if not path.is_file():
        raise missing_file(path, f"a MIST mnist_hard directory needs it; {MIST_DOWNLOAD}")
    try:
        keypoints = np.load(path, allow_pickle=False)
    except Exception as exc:  # truncated or foreign .npy: numpy raises several kinds
        raise DataFileError(path, f"cannot read npy ({exc})") from exc
    if keypoints.ndim != 3 or keypoints.shape[2] != 3:
        raise DataFileError(path, f"expected [N, digits, 3] (x, y, half side), got {list(keypoints.shape)}")
    if keypoints.shape[0] != count:
        raise DataFileError(path, f"{keypoints.shape[0]} rows but the image list has {count}")
    if keypoints.shape[1] != digits:
        raise DataFileError(path, f"{keypoints.shape[1]} digits per image but the labels have {digits}")
    keypoints = keypoints.astype(np.float32)
    if not np.isfinite(keypoints).all():
        raise DataFileError(path, "holds NaN or infinite values")
    return keypoints


class MistMnistHard(Dataset):
    """One split of the published MNIST-Hard files (see the module doc).

    Args:
        root: the ``mnist_hard`` directory.
        split: ``"train"`` or ``"test"`` (or any split name whose files exist).
        image_size: output side (or ``(H, W)``); 80 as in the paper.
        length: keep at most this many images (the first ones).
        resize: ``"smooth"`` (default) or ``"nearest"`` (:data:`~tusk.data._common.RESIZE_MODES`).

    Items (as :class:`~tusk.data.MnistHard`): ``image [3, H, W]`` float32 in [0, 1];
    ``centers [D, 2]`` float32 (x, y); ``boxes [D, 4]`` float32 ``(x0, y0, x1, y1)``;
    ``labels [D]`` int64 digit classes.

    Construction reads the three listing files and checks their agreement and that every
    listed image exists; :meth:`verify` also decodes every image.
    """

    def __init__(self, root: str | os.PathLike, split: str = "train", *,
                 image_size: int | tuple[int, int] | None = CANVAS, length: int | None = None,
                 resize: str | None = None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise missing_file(self.root, f"the MIST mnist_hard directory; {MIST_DOWNLOAD}")
        self.split = split
        files = split_files(self.root, split)
        self.files = files
        names = _lines(files["images"])
        self.labels = _labels(files["labels"], len(names))
        self.keypoints = _keypoints(files["keypoints"], len(names), self.labels.shape[1])
        self.paths = [self.root / name for name in names]
        missing = [p for p in self.paths if not p.is_file()]
        if missing:
            raise missing_file(missing[0], f"listed in {files['images'].name}; {len(missing)} of "
                                           f"{len(self.paths)} listed images are missing")
        if length is not None:
            if not isinstance(length, (int, np.integer)) or length < 0:
                raise ValueError(f"length must be an int >= 0, got {length!r}")
            self.paths = self.paths[:length]
        self.image_size = as_size(image_size, (CANVAS, CANVAS))
        self.resize = check_resize(resize)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def num_digits(self) -> int:
        """Digits annotated per image (``D``)."""
        return int(self.labels.shape[1])

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        index = check_index(index, len(self))
        image, stored = load_rgb(self.paths[index], None)
        resized = resize_nearest(image, self.image_size) if self.resize == "nearest" else \
            resize_image(image, self.image_size)
        image = np.ascontiguousarray(resized)
        keypoints = self.keypoints[index]
        centers, half = keypoints[:, :2], keypoints[:, 2:3]
        boxes = np.concatenate([centers - half, centers + half], axis=1)
        centers = scale_xy(centers, stored, self.image_size)
        boxes = scale_xy(boxes.reshape(-1, 2, 2), stored, self.image_size).reshape(-1, 4)
        return {
            "image": torch.from_numpy(image),
            "centers": torch.from_numpy(np.ascontiguousarray(centers, dtype=np.float32)),
            "boxes": torch.from_numpy(np.ascontiguousarray(boxes, dtype=np.float32)),
            "labels": torch.from_numpy(self.labels[index].copy()),
        }

    def verify(self, progress: bool = True) -> dict[str, object]:
        """Decode every image (a corrupt one raises :class:`DataFileError` naming it).

        Returns ``{"images", "digits", "stored_sizes"}``: counts and the distinct stored
        ``(H, W)`` sizes.
        """
        from tqdm import tqdm

        sizes: set[tuple[int, int]] = set()
        for path in tqdm(self.paths, desc=f"checking {self.split} images", unit="image", disable=not progress,
                         leave=False):
            sizes.add(load_rgb(path, None)[1])
        return {"images": len(self.paths), "digits": len(self.paths) * self.num_digits,
                "stored_sizes": sorted(sizes)}
