"""Tetrominoes, generated on the fly (the DeepMind multi-object-datasets definition).

35x35 RGB images on black, each with 3 non-overlapping tetrominoes; a piece is one of the
19 distinct rotations of the 7 tetrominoes (:data:`SHAPES`) in one of 6 flat colours
(:data:`COLORS`), with per-object instance masks and shape/colour labels. Nothing is
downloaded; item ``i`` depends only on ``(seed, i)``.

Choices where the dataset description is silent: blocks are ``block_size = 5`` px (an
I piece spans 20 px of the 35); shape, colour and position of each piece are uniform and
independent (colours may repeat), a position being redrawn until the piece fits the canvas
without overlapping earlier pieces (touching is allowed). The colour order matches the
reader of the published TFRecords (:mod:`tusk.data.multi_object`): red, green, blue, cyan,
magenta, yellow.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from ._common import as_size, check_index, check_length, check_resize, item_rng, resize_item_arrays, scale_xy

NATIVE_SIZE = 35
NUM_OBJECTS = 3
_PLACEMENT_TRIES = 200  # random positions tried per piece before the scene is redrawn

#: The 7 one-sided tetrominoes as (row, col) blocks, in their spawn orientation.
_PIECES = {
    "I": ((0, 0), (0, 1), (0, 2), (0, 3)),
    "O": ((0, 0), (0, 1), (1, 0), (1, 1)),
    "T": ((0, 0), (0, 1), (0, 2), (1, 1)),
    "S": ((0, 1), (0, 2), (1, 0), (1, 1)),
    "Z": ((0, 0), (0, 1), (1, 1), (1, 2)),
    "J": ((0, 0), (1, 0), (1, 1), (1, 2)),
    "L": ((0, 2), (1, 0), (1, 1), (1, 2)),
}


def _rotations(blocks):
    """Distinct 90-degree rotations of a piece (normalised to the origin), in order."""
    seen, out = set(), []
    cur = blocks
    for _ in range(4):
        rmin = min(r for r, _ in cur)
        cmin = min(c for _, c in cur)
        norm = tuple(sorted((r - rmin, c - cmin) for r, c in cur))
        if norm not in seen:
            seen.add(norm)
            out.append(norm)
        cur = tuple((c, -r) for r, c in cur)  # rotate by 90 degrees
    return out


#: The 19 shapes: ``(name, blocks)``, e.g. ``("T90", ((0, 0), ...))``; label = list index.
SHAPES: tuple[tuple[str, tuple[tuple[int, int], ...]], ...] = tuple(
    (f"{piece}{90 * k}", blocks)
    for piece, base in _PIECES.items()
    for k, blocks in enumerate(_rotations(base))
)
#: The 6 colours (RGB in [0, 1]); label = index.
COLORS = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 1, 1], [1, 0, 1], [1, 1, 0]], dtype=np.float32)
COLOR_NAMES = ("red", "green", "blue", "cyan", "magenta", "yellow")


def shape_mask(shape: int, block_size: int = 5) -> np.ndarray:
    """The bool ``[h, w]`` pixel mask of shape label ``shape`` with ``block_size``-px blocks."""
    blocks = SHAPES[shape][1]
    h = 1 + max(r for r, _ in blocks)
    w = 1 + max(c for _, c in blocks)
    cells = np.zeros((h, w), dtype=bool)
    for r, c in blocks:
        cells[r, c] = True
    return np.kron(cells, np.ones((block_size, block_size), dtype=bool))


class Tetrominoes(Dataset):
    """Generated Tetrominoes scenes.

    Args:
        length: number of scenes (the paper trains on 50k and tests on 10k).
        image_size: ``None`` keeps 35x35; an int (or ``(H, W)``) resizes (see ``resize``).
        resize: ``"smooth"`` (default): images by area averaging when shrinking and bilinear
            interpolation when enlarging, masks by nearest neighbour (``nearest-exact``);
            ``"nearest"``: image and masks by torch's legacy nearest, as the official code
            (35 -> 112 repeats each pixel 3 or 4 times).
        seed: scene seed.
        block_size: side of a tetromino block in native pixels.

    Items: ``image [3, H, W]`` float32 in [0, 1]; ``masks [3, H, W]`` bool instance masks
    (background excluded, disjoint); ``centers [3, 2]`` float32 mask centroids (x, y) (of
    the native 35x35 masks mapped to the output size, so free of resampling jitter);
    ``shape [3]`` int64 in ``[0, 19)`` (see :data:`SHAPES`); ``color [3]`` int64 in ``[0, 6)``
    (see :data:`COLORS`).

    Example:
        >>> item = Tetrominoes(length=4)[0]
        >>> item["image"].shape, item["masks"].shape, item["shape"].shape
        (torch.Size([3, 35, 35]), torch.Size([3, 35, 35]), torch.Size([3]))
    """

    def __init__(self, length: int = 50_000, *, image_size: int | tuple[int, int] | None = None,
                 seed: int = 0, block_size: int = 5, resize: str | None = None):
        self.length = check_length(length)
        self.image_size = as_size(image_size, (NATIVE_SIZE, NATIVE_SIZE))
        self.resize = check_resize(resize)
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {seed!r}")
        self.seed = int(seed)
        if not isinstance(block_size, (int, np.integer)) or not 1 <= block_size <= NATIVE_SIZE // 4:
            raise ValueError(f"block_size must be an int in [1, {NATIVE_SIZE // 4}], got {block_size!r}")
        self.block_size = int(block_size)
        self._templates = [shape_mask(s, self.block_size) for s in range(len(SHAPES))]
        self._centroids = [np.array([t.nonzero()[1].mean(), t.nonzero()[0].mean()], np.float32)
                           for t in self._templates]

    def __len__(self) -> int:
        return self.length

    def scene(self, index: int):
        """Native scene: ``(image [3, 35, 35] float32, masks [3, 35, 35] bool, centers [3, 2],
        shape [3], color [3])`` as numpy arrays."""
        index = check_index(index, self.length)
        rng = item_rng(self.seed, index)
        while True:  # rejection sampling of whole scenes; ~1 in 400 jams (3 I pieces can)
            scene = self._try_scene(rng)
            if scene is not None:
                return scene

    def _try_scene(self, rng: np.random.Generator):
        n = NUM_OBJECTS
        size = NATIVE_SIZE
        u = rng.random(2 * n)
        shapes = np.floor(u[:n] * len(SHAPES)).astype(np.int64)
        colors = np.floor(u[n:] * len(COLORS)).astype(np.int64)
        image = np.zeros((3, size, size), dtype=np.float32)
        masks = np.zeros((n, size, size), dtype=bool)
        occupied = np.zeros((size, size), dtype=bool)
        centers = np.empty((n, 2), dtype=np.float32)
        for k in range(n):
            template = self._templates[shapes[k]]
            h, w = template.shape
            for _ in range(_PLACEMENT_TRIES):
                x, y = (rng.random(2) * (size - w + 1, size - h + 1)).astype(np.int64).tolist()
                if not (occupied[y:y + h, x:x + w] & template).any():
                    break
            else:
                return None  # earlier pieces left no room: redraw the scene
            occupied[y:y + h, x:x + w] |= template
            masks[k, y:y + h, x:x + w] = template
            image[:, y:y + h, x:x + w][:, template] = COLORS[colors[k]][:, None]
            centers[k] = self._centroids[shapes[k]] + (x, y)
        return image, masks, centers, shapes, colors

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        image, masks, centers, shapes, colors = self.scene(index)
        native = (NATIVE_SIZE, NATIVE_SIZE)
        if self.image_size != native:
            image, masks = resize_item_arrays(image, masks, self.image_size, self.resize)
            centers = scale_xy(centers, native, self.image_size)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image)),
            "masks": torch.from_numpy(np.ascontiguousarray(masks)),
            "centers": torch.from_numpy(np.ascontiguousarray(centers, dtype=np.float32)),
            "shape": torch.from_numpy(shapes),
            "color": torch.from_numpy(colors),
        }
