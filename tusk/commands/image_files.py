"""Image files for ``tusk detect``: reading any bit depth Pillow opens, and naming the outputs.

Pixel values become float32 in [0, 1] by the full scale of their bit depth: 8-bit images
(greyscale, RGB, palette, with or without alpha; Pillow also reads 16-bit RGB PNGs this way)
divide by 255, 16-bit greyscale (Pillow modes ``I;16``, ``I;16B``, ...; ``I`` for a 16-bit PNG
in old Pillow) by 65535; ``convert("RGB")`` would clip those to 255, i.e. white. Float images
(mode ``F``) must already lie in [0, 1]. Alpha is dropped, greyscale is repeated over RGB.
"""
from __future__ import annotations

import os
import re
from collections.abc import Sequence

import numpy as np
import torch

from .common import UserError

#: Pillow modes of 16-bit greyscale (``I`` is how Pillow < 10 opened a 16-bit PNG).
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def load_image(path: str) -> torch.Tensor:
    """``[3, H, W]`` float32 in [0, 1] from an image file (see the module doc for scaling).

    Raises:
        UserError: missing or unreadable file, a decompression bomb (more pixels than Pillow's
            ``Image.MAX_IMAGE_PIXELS`` guard allows), or values outside the range of its mode.
    """
    from PIL import Image, UnidentifiedImageError

    if not os.path.isfile(path):
        raise UserError(f"image not found: {path}")
    try:
        with Image.open(path) as image:
            array = _unit_range(image, path)
    except Image.DecompressionBombError as err:
        raise UserError(_bomb_message(path, err)) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise UserError(f"{path}: not a readable image ({err})") from None
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1).contiguous()


def _unit_range(image, path: str) -> np.ndarray:
    """``[H, W]`` (grey) or ``[H, W, 3]`` float32 in [0, 1]."""
    if image.mode in SIXTEEN_BIT_MODES:
        values = np.asarray(image)
        if image.mode == "I" and (values.min() < 0 or values.max() > 65535):
            raise UserError(f"{path}: 32-bit integer pixels are not supported (convert it to 8 or 16 bits)")
        return (values.astype(np.float64) / 65535).astype(np.float32)
    if image.mode == "F":
        values = np.asarray(image, dtype=np.float32)
        if not (np.isfinite(values).all() and values.min() >= 0 and values.max() <= 1):
            raise UserError(f"{path}: float pixel values must lie in [0, 1], found "
                            f"[{np.nanmin(values):g}, {np.nanmax(values):g}]")
        return values
    return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0


def _bomb_message(path: str, err: Exception) -> str:
    from PIL import Image

    size = _declared_size(path)
    found = re.search(r"\((\d+) pixels\)", str(err))
    pixels = size[0] * size[1] if size else int(found.group(1)) if found else None
    what = f"{size[0]}x{size[1]} = " if size else ""
    count = f"{what}{pixels:,} pixels" if pixels is not None else "too many pixels"
    limit = 2 * Image.MAX_IMAGE_PIXELS if Image.MAX_IMAGE_PIXELS else None
    over = f", over the {limit:,}-pixel limit" if limit else ""
    return (f"{path}: {count}{over} of the image reader (a guard against decompression bombs); "
            "downscale it first")


def _declared_size(path: str) -> tuple[int, int] | None:
    """``(width, height)`` from the file's header, read without the size guard."""
    from PIL import Image

    limit = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = None
        with Image.open(path) as image:
            return image.size
    except Exception:  # only used to word an error message
        return None
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def output_names(paths: Sequence[str]) -> list[str]:
    """One distinct ``.png`` name per input: ``<stem>.png``, and for the second, third, ...
    input of one stem ``<stem>-2.png``, ``<stem>-3.png``, ... (skipping names another input's
    own stem claims). Names differ even without regard to case (case-insensitive file systems).
    """
    stems = [os.path.splitext(os.path.basename(path))[0] for path in paths]
    claimed = {stem.casefold() for stem in stems}
    taken: set[str] = set()
    names = []
    for stem in stems:
        name = stem
        if name.casefold() in taken:
            number = 2
            while f"{stem}-{number}".casefold() in taken | claimed:
                number += 1
            name = f"{stem}-{number}"
        taken.add(name.casefold())
        names.append(f"{name}.png")
    return names
