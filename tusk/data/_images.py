"""Loading an image file as a float ``[3, H, W]`` array, with errors that name the file."""
from __future__ import annotations

import os

import numpy as np

from ._common import resize_image
from .errors import DataFileError, missing_file


def load_rgb(path: str | os.PathLike, size: tuple[int, int] | None = None) -> tuple[np.ndarray, tuple[int, int]]:
    """``(image [3, H', W'] float32 in [0, 1], (H, W) original size)``; resized to ``size``
    with :func:`~tusk.data._common.resize_image` (area when shrinking, bilinear when enlarging)."""
    from PIL import Image, UnidentifiedImageError

    if not os.path.isfile(path):
        raise missing_file(path)
    try:
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))
    except (OSError, UnidentifiedImageError, SyntaxError) as exc:
        raise DataFileError(path, f"cannot decode image ({exc})") from exc
    original = rgb.shape[:2]
    image = rgb.transpose(2, 0, 1).astype(np.float32) * np.float32(1 / 255)
    if size is not None:
        image = resize_image(image, size)
    return np.ascontiguousarray(image), original


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(H, W)`` of an image file, from its header only."""
    from PIL import Image, UnidentifiedImageError

    if not os.path.isfile(path):
        raise missing_file(path)
    try:
        with Image.open(path) as im:
            w, h = im.size
    except (OSError, UnidentifiedImageError, SyntaxError) as exc:
        raise DataFileError(path, f"cannot read image header ({exc})") from exc
    return h, w
