"""Human3.6M frames with 2-D poses (TUSK Sec. 4.3, protocol of Zhang et al. 2018).

Human3.6M's licence forbids redistribution and its videos need conversion, so this reader
takes frames you extracted (background removed or not) and their 2-D joint positions::

    <root>/poses.npz          # paths [N] str: frame files relative to <root>
                              # keypoints [N, 32, 2] float: (x, y) pixels in that frame
    <root>/S1/Directions/000001.jpg ...   # any layout; the first path component is the subject

Splits by subject: ``"train"`` = S1, S5, S6, S7, S8, S9 (six actors), ``"test"`` = S11 (the
last one), overridable with ``subjects=``. Frames are resized to a square ``image_size``
(default 128) and joints scaled per axis. Items carry ``swap_pairs [13, 2]``: the (left,
right) joint pairs of the 32-joint skeleton that :func:`tusk.eval.swap_left_right` swaps
for subjects seen from the back (front and back views look alike).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ._common import as_size, check_index, scale_xy
from ._images import load_rgb
from .errors import DataFileError, missing_file

#: (left, right) joints of the 32-joint Human3.6M skeleton: legs 6-10 / 1-5, arms 16-23 / 24-31.
H36M_SWAP_PAIRS = np.array([[6, 1], [7, 2], [8, 3], [9, 4], [10, 5], [16, 24], [17, 25], [18, 26],
                            [19, 27], [20, 28], [21, 29], [22, 30], [23, 31]], dtype=np.int64)
SUBJECTS = {"train": ("S1", "S5", "S6", "S7", "S8", "S9"), "test": ("S11",)}


class H36M(Dataset):
    """Human3.6M frames + 2-D poses (see the module doc).

    Items: ``image [3, S, S]`` float32; ``landmarks [J, 2]`` float32 (x, y) pixels of the
    returned image; ``swap_pairs [P, 2]`` int64; ``name`` the frame path.
    """

    def __init__(self, root: str | os.PathLike, split: str = "train", *, image_size=None,
                 length: int | None = None, subjects=None, swap_pairs=H36M_SWAP_PAIRS):
        root = Path(root)
        if subjects is None:
            if split not in SUBJECTS:
                raise ValueError(f"split must be 'train' or 'test' (or pass subjects=), got {split!r}")
            subjects = SUBJECTS[split]
        index_file = root / "poses.npz"
        if not index_file.is_file():
            raise missing_file(index_file, "see tusk.data.h36m for the expected layout")
        try:
            with np.load(index_file, allow_pickle=False) as npz:
                paths = [str(p) for p in npz["paths"]]
                keypoints = np.asarray(npz["keypoints"], dtype=np.float32)
        except KeyError as exc:
            raise DataFileError(index_file, f"missing array {exc}") from exc
        except Exception as exc:  # zip/npy decoding errors of a damaged file
            raise DataFileError(index_file, f"cannot read ({exc})") from exc
        if keypoints.ndim != 3 or keypoints.shape[2] != 2 or len(keypoints) != len(paths):
            raise DataFileError(index_file, f"keypoints must be [N={len(paths)}, J, 2], got {list(keypoints.shape)}")
        pairs = np.asarray(swap_pairs, dtype=np.int64).reshape(-1, 2)
        if pairs.size and pairs.max() >= keypoints.shape[1]:
            raise ValueError(f"swap_pairs index joint {pairs.max()} but poses have {keypoints.shape[1]} joints")
        wanted = set(subjects)
        keep = [i for i, p in enumerate(paths) if Path(p).parts and Path(p).parts[0] in wanted]
        if length is not None:
            keep = keep[: int(length)]
        self.root = root
        self.paths = [paths[i] for i in keep]
        self.keypoints = keypoints[keep]
        self.swap_pairs = torch.from_numpy(pairs)
        self.image_size = as_size(image_size, (128, 128))

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict:
        index = check_index(index, len(self))
        path = self.paths[index]
        image, original = load_rgb(self.root / path, self.image_size)
        landmarks = scale_xy(self.keypoints[index], original, self.image_size)
        return {"image": torch.from_numpy(image), "landmarks": torch.from_numpy(landmarks),
                "swap_pairs": self.swap_pairs.clone(), "name": path}
