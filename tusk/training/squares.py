"""``squares``: a tiny procedural dataset of coloured squares on black, for smoke tests.

Each image holds ``objects`` non-overlapping axis-aligned squares, each of one of six colours
and a random side; items follow the dataset contract of ``tusk.data`` (``image [3, H, W]`` in
[0, 1], ``centers [n, 2]`` (x, y), ``masks [n, H, W]`` bool, ``labels [n]`` colour index) and
are reproducible from ``(seed, split, index)`` alone.
"""
from __future__ import annotations

import numpy as np
import torch

COLOURS = np.array([(1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (1, 0, 1), (0, 1, 1)], dtype=np.float32)
_SPLITS = {"train": 0, "val": 1, "test": 2}


class Squares(torch.utils.data.Dataset):
    """Coloured squares.

    Args:
        length: number of items.
        image_size: side of the square images.
        objects: squares per image.
        sides: (min, max) side of a square in pixels, inclusive.
        split: ``train``, ``val`` or ``test`` (distinct random streams).
        seed: generation seed.
    """

    def __init__(self, length: int = 1000, *, image_size: int = 24, objects: int = 2,
                 sides: tuple[int, int] = (4, 6), split: str = "train", seed: int = 0) -> None:
        if split not in _SPLITS:
            raise ValueError(f"split must be one of {sorted(_SPLITS)}, got {split!r}")
        if objects * (sides[1] + 1) ** 2 > image_size**2 // 2:
            raise ValueError(f"{objects} squares of side {sides[1]} do not fit a {image_size}px image")
        self.length, self.image_size, self.objects, self.sides = length, image_size, objects, sides
        self.seed = 3 * seed + _SPLITS[split]

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} items")
        rng = np.random.default_rng([self.seed, index])
        size = self.image_size
        image = np.zeros((3, size, size), dtype=np.float32)
        occupied = np.zeros((size, size), dtype=bool)
        masks, centers, labels = [], [], []
        while len(masks) < self.objects:
            side = int(rng.integers(self.sides[0], self.sides[1] + 1))
            x0, y0 = (int(v) for v in rng.integers(0, size - side + 1, size=2))
            # Keep a one-pixel gap so squares never touch.
            if occupied[max(0, y0 - 1):y0 + side + 1, max(0, x0 - 1):x0 + side + 1].any():
                continue
            colour = int(rng.integers(len(COLOURS)))
            mask = np.zeros((size, size), dtype=bool)
            mask[y0:y0 + side, x0:x0 + side] = True
            occupied |= mask
            image[:, mask] = COLOURS[colour][:, None]
            masks.append(mask)
            centers.append((x0 + (side - 1) / 2, y0 + (side - 1) / 2))
            labels.append(colour)
        return {
            "image": torch.from_numpy(image),
            "centers": torch.tensor(centers, dtype=torch.float32),
            "masks": torch.from_numpy(np.stack(masks)),
            "labels": torch.tensor(labels, dtype=torch.int64),
        }
