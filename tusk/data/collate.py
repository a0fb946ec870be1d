"""Batching of dataset items (``DataLoader(..., collate_fn=tusk.data.collate)``)."""
from __future__ import annotations

from collections.abc import Sequence

import torch

#: Per-object fields: their first dimension is the object count, which varies per image,
#: so they are always kept as lists of tensors (even when a batch happens to agree).
PER_OBJECT_KEYS = frozenset({"centers", "boxes", "labels", "masks", "shape", "color", "size",
                             "material", "visible"})


def collate(items: Sequence[dict]) -> dict:
    """Batch a list of items.

    ``image`` and every other tensor field of fixed shape (``landmarks [T, 2]``, ...) are
    stacked to ``[B, ...]``; per-object fields (:data:`PER_OBJECT_KEYS`), tensors whose
    shapes differ between items, and non-tensors (names, paths) become lists of length B.

    Example:
        >>> batch = collate([{"image": torch.zeros(3, 4, 4), "labels": torch.arange(2)},
        ...                  {"image": torch.ones(3, 4, 4), "labels": torch.arange(3)}])
        >>> batch["image"].shape, [t.tolist() for t in batch["labels"]]
        (torch.Size([2, 3, 4, 4]), [[0, 1], [0, 1, 2]])
    """
    if len(items) == 0:
        raise ValueError("collate needs at least one item")
    keys = items[0].keys()
    for i, item in enumerate(items):
        if item.keys() != keys:
            raise ValueError(f"item {i} has fields {sorted(item.keys())}, item 0 has {sorted(keys)}")
    batch = {}
    for key in keys:
        values = [item[key] for item in items]
        stackable = (key not in PER_OBJECT_KEYS
                     and all(isinstance(v, torch.Tensor) for v in values)
                     and all(v.shape == values[0].shape for v in values))
        batch[key] = torch.stack(values) if stackable else values
    return batch
