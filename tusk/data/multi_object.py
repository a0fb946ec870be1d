"""Readers of the DeepMind multi-object-datasets TFRecords: CLEVR6 and Tetrominoes.

Files (one GZIP-compressed TFRecord file each, as published)::

    <root>/clevr_with_masks_train.tfrecords    # 100k scenes, 240x320, up to 10 objects
    <root>/tetrominoes_train.tfrecords         # 1M scenes, 35x35, 3 objects

Each record holds the image, one mask per entity (entity 0 = background) and per-entity
attributes; DeepMind stores uint8 tensors as one 1-byte string per element, decoded here
without TensorFlow (:mod:`tusk.data.tfrecord`). A GZIP stream cannot be read at random, so
the scenes a split needs are converted once into an HDF5 cache (``cache_dir``, default
beside the TFRecord file): image crops as uint8, the segmentation as one uint8 label map
(the DeepMind masks partition the image), attributes as int16. An interrupted conversion is
detected and redone.

Protocols (TUSK Sec. 4.2, following IODINE / Slot Attention):

- **CLEVR6**: the first 70k scenes with at most 6 objects; train = the first 60k of them,
  test = the last 10k. Images are cropped to rows 29:221, columns 64:256 (192x192) and
  resized (default 128x128; TUSK used 112). Attributes ``shape`` (3), ``color`` (8),
  ``size`` (2), ``material`` (2), zero-based in DeepMind's coding. Objects with no pixel left
  in the crop are dropped.
- **Tetrominoes**: the first 60k scenes; train = first 50k, test = last 10k; 35x35 native.
  ``shape`` = DeepMind's shape code - 1 (its own order, not :data:`~tusk.data.SHAPES`;
  prototype mappings are learned, so the order does not matter), ``color`` = index in
  :data:`~tusk.data.COLORS`.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ._common import as_size, check_index, mask_centroids, resize_image, resize_masks, scale_xy
from .errors import DataFileError, missing_file
from .tetrominoes import COLORS
from .tfrecord import iter_examples

ATTRIBUTE_NAMES = ("shape", "color", "size", "material")


def _uint8(example: dict, key: str, shape: tuple[int, ...]) -> np.ndarray:
    value = example.get(key)
    if isinstance(value, list) and len(value) == 1:
        value = np.frombuffer(value[0], dtype=np.uint8)
    if not isinstance(value, np.ndarray) or value.size != int(np.prod(shape)):
        size = getattr(value, "size", None if value is None else len(value))
        raise ValueError(f"feature {key!r}: expected {int(np.prod(shape))} bytes, got {size}")
    return value.astype(np.uint8, copy=False).reshape(shape)


def _floats(example: dict, key: str, shape: tuple[int, ...]) -> np.ndarray:
    value = example.get(key)
    if not isinstance(value, np.ndarray) or value.size != int(np.prod(shape)):
        raise ValueError(f"feature {key!r}: expected {int(np.prod(shape))} floats")
    return value.astype(np.float32).reshape(shape)


def _segmentation(masks: np.ndarray) -> np.ndarray:
    """``[E, H, W]`` uint8 entity masks (255 = in) -> ``[H, W]`` uint8 label map (entity index)."""
    return np.argmax(masks >= 128, axis=0).astype(np.uint8)


class _Variant:
    """What differs between the datasets of the family."""

    file: str
    native: tuple[int, int]
    entities: int
    crop: tuple[slice, slice]
    default_size: tuple[int, int]
    split_sizes: tuple[int, int]

    def select(self, example: dict) -> bool:
        return True

    def convert(self, example: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """-> ``(image [h, w, 3] uint8 cropped, segmentation [h, w] uint8,
        attributes [E, 4] int16 (-1 = none), visible [E] bool)``."""
        raise NotImplementedError


class _Clevr(_Variant):
    file = "clevr_with_masks_train.tfrecords"
    native = (240, 320)
    entities = 11
    crop = (slice(29, 221), slice(64, 256))
    default_size = (128, 128)
    split_sizes = (60_000, 10_000)

    def __init__(self, max_objects: int = 6):
        self.max_objects = max_objects

    def select(self, example):
        visibility = _floats(example, "visibility", (self.entities,))
        return int((visibility[1:] > 0).sum()) <= self.max_objects

    def convert(self, example):
        h, w = self.native
        image = _uint8(example, "image", (h, w, 3))[self.crop]
        masks = _uint8(example, "mask", (self.entities, h, w, 1))[..., 0]
        seg = _segmentation(masks)[self.crop]
        attrs = np.stack([_uint8(example, k, (self.entities,)).astype(np.int16) - 1 for k in ATTRIBUTE_NAMES], 1)
        visible = _floats(example, "visibility", (self.entities,)) > 0
        return np.ascontiguousarray(image), np.ascontiguousarray(seg), attrs, visible


class _Tetrominoes(_Variant):
    file = "tetrominoes_train.tfrecords"
    native = (35, 35)
    entities = 4
    crop = (slice(None), slice(None))
    default_size = (35, 35)
    split_sizes = (50_000, 10_000)

    def convert(self, example):
        h, w = self.native
        image = _uint8(example, "image", (h, w, 3))
        masks = _uint8(example, "mask", (self.entities, h, w, 1))[..., 0]
        shape = np.rint(_floats(example, "shape", (self.entities,))).astype(np.int16) - 1
        rgb = _floats(example, "color", (self.entities, 3))
        match = np.all(np.abs(rgb[:, None, :] - COLORS[None]) < 0.5, axis=-1)  # [E, 6]
        color = np.where(match.any(1), match.argmax(1), -1).astype(np.int16)
        attrs = np.full((self.entities, 4), -1, dtype=np.int16)
        attrs[:, 0], attrs[:, 1] = shape, color
        visible = _floats(example, "visibility", (self.entities,)) > 0
        return image, _segmentation(masks), attrs, visible


def _resolve_file(root: str | os.PathLike, name: str) -> Path:
    root = Path(root)
    path = root if root.is_file() else root / name
    if not path.is_file():
        raise missing_file(path, "download it from the DeepMind multi-object-datasets bucket")
    return path


def build_cache(source: str | os.PathLike, cache: str | os.PathLike, variant: _Variant, count: int, *,
                verify: bool = True, progress: bool = True) -> Path:
    """Convert the first ``count`` selected scenes of ``source`` into the HDF5 ``cache``."""
    source, cache = Path(source), Path(cache)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(cache.name + ".partial")
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=count, desc=f"caching {source.name}", unit="scene", leave=False)
    try:
        _convert(source, tmp, variant, count, verify, bar)
    except BaseException:
        tmp.unlink(missing_ok=True)  # never leave a half-written cache behind
        raise
    finally:
        if bar is not None:
            bar.close()
    os.replace(tmp, cache)
    return cache


def _convert(source: Path, tmp: Path, variant: _Variant, count: int, verify: bool, bar) -> None:
    import h5py

    written = 0
    with h5py.File(tmp, "w") as f:
        datasets = None
        for index, example in enumerate(iter_examples(source, verify=verify)):
            if written == count:
                break
            try:
                if not variant.select(example):
                    continue
                image, seg, attrs, visible = variant.convert(example)
            except ValueError as exc:
                raise DataFileError(source, f"record {index}: {exc}") from exc
            if datasets is None:
                chunk = (1,) + image.shape[:2]
                datasets = {
                    "image": f.create_dataset("image", (count,) + image.shape, np.uint8,
                                              chunks=chunk + (3,), compression="lzf"),
                    "segmentation": f.create_dataset("segmentation", (count,) + seg.shape, np.uint8,
                                                     chunks=chunk, compression="lzf"),
                    "attributes": f.create_dataset("attributes", (count,) + attrs.shape, np.int16),
                    "visible": f.create_dataset("visible", (count,) + visible.shape, bool),
                    "record": f.create_dataset("record", (count,), np.int64),
                }
            for key, value in (("image", image), ("segmentation", seg), ("attributes", attrs),
                               ("visible", visible), ("record", index)):
                datasets[key][written] = value
            written += 1
            if bar is not None:
                bar.update(1)
        if written < count:
            raise DataFileError(source, f"holds only {written} usable scenes, {count} needed")
        f.attrs["source"] = source.name
        f.attrs["count"] = count


class MultiObjectRecords(Dataset):
    """A split of a DeepMind multi-object dataset (see the module doc); use :class:`Clevr6`
    or :class:`TetrominoesRecords`.

    Items: ``image [3, H, W]`` float32 in [0, 1]; ``masks [n, H, W]`` bool (objects only);
    ``centers [n, 2]`` float32 mask centroids (x, y) (native masks, mapped to the output
    size); ``shape``, ``color`` int64 ``[n]`` (CLEVR also ``size``, ``material``);
    ``index`` the scene's record number in the TFRecord file.
    """

    variant: _Variant

    def __init__(self, root: str | os.PathLike, split: str = "train", *, image_size=None,
                 length: int | None = None, cache_dir: str | os.PathLike | None = None,
                 split_sizes: tuple[int, int] | None = None, verify: bool = True, progress: bool = True):
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        self.source = _resolve_file(root, self.variant.file)
        n_train, n_test = split_sizes or self.variant.split_sizes
        total = n_train + n_test
        cache_dir = Path(cache_dir) if cache_dir is not None else self.source.parent
        self.cache = cache_dir / f"{self.source.stem}.{self._cache_tag()}.{total}.h5"
        if not self.cache.is_file():
            build_cache(self.source, self.cache, self.variant, total, verify=verify, progress=progress)
        self._check_cache(total)
        start, stop = (0, n_train) if split == "train" else (n_train, total)
        if length is not None:
            stop = min(stop, start + int(length))
        self.start, self.stop = start, stop
        self.split = split
        self.image_size = as_size(image_size, self.variant.default_size)
        self._h5 = None

    def _cache_tag(self) -> str:
        return type(self).__name__.lower()

    def _check_cache(self, total: int) -> None:
        import h5py

        try:
            with h5py.File(self.cache, "r") as f:
                count = int(f.attrs["count"])
                sizes = {k: f[k].shape[0] for k in ("image", "segmentation", "attributes", "visible")}
        except (OSError, KeyError) as exc:
            raise DataFileError(self.cache, f"unreadable cache ({exc}); delete it to rebuild") from exc
        if count != total or set(sizes.values()) != {total}:
            raise DataFileError(self.cache, "cache does not match the requested split sizes; delete it to rebuild")

    def __len__(self) -> int:
        return self.stop - self.start

    def __getstate__(self):  # h5py handles cannot be pickled into DataLoader workers
        state = dict(self.__dict__)
        state["_h5"] = None
        return state

    def close(self) -> None:
        """Close the cache file (reopened on the next item)."""
        if self._h5 is not None:
            self._h5.close()
            self._h5 = None

    def _file(self):
        if self._h5 is None:
            import h5py

            try:
                self._h5 = h5py.File(self.cache, "r")
            except OSError as exc:
                raise DataFileError(self.cache, f"cannot open cache ({exc})") from exc
        return self._h5

    def __getitem__(self, index: int) -> dict:
        index = check_index(index, len(self)) + self.start
        f = self._file()
        try:
            image = f["image"][index]
            seg = f["segmentation"][index]
            attrs = f["attributes"][index]
            visible = f["visible"][index]
            record = int(f["record"][index])
        except (OSError, KeyError) as exc:
            raise DataFileError(self.cache, f"scene {index}: {exc}") from exc
        ids = [e for e in range(1, len(visible)) if visible[e]]
        masks = seg[None] == np.array(ids, dtype=np.uint8)[:, None, None] if ids else \
            np.zeros((0,) + seg.shape, bool)
        keep = masks.reshape(len(ids), -1).any(1) if ids else np.zeros(0, bool)
        masks = masks[keep]
        ids = np.array(ids, dtype=np.int64)[keep]
        native = seg.shape
        centers = scale_xy(mask_centroids(masks), native, self.image_size) if len(ids) else np.zeros((0, 2), np.float32)
        img = image.transpose(2, 0, 1).astype(np.float32) * np.float32(1 / 255)
        item = {
            "image": torch.from_numpy(np.ascontiguousarray(resize_image(img, self.image_size))),
            "masks": torch.from_numpy(np.ascontiguousarray(resize_masks(masks, self.image_size))),
            "centers": torch.from_numpy(np.ascontiguousarray(centers, dtype=np.float32)),
        }
        for j, name in enumerate(self._attributes()):
            item[name] = torch.from_numpy(attrs[ids, j].astype(np.int64))
        item["index"] = record
        return item

    def _attributes(self) -> tuple[str, ...]:
        return ATTRIBUTE_NAMES


class Clevr6(MultiObjectRecords):
    """CLEVR6 from ``clevr_with_masks_train.tfrecords`` (see the module doc).

    ``root``: the directory holding the file (or the file itself). ``split_sizes``
    overrides (60000, 10000); ``max_objects`` (6) the filter.
    """

    def __init__(self, root, split: str = "train", *, max_objects: int = 6, **kwargs):
        self.variant = _Clevr(max_objects)
        super().__init__(root, split, **kwargs)

    def _cache_tag(self) -> str:
        return f"clevr{self.variant.max_objects}"


class TetrominoesRecords(MultiObjectRecords):
    """Tetrominoes from the published ``tetrominoes_train.tfrecords`` (see the module doc);
    :class:`~tusk.data.Tetrominoes` generates equivalent scenes without any file."""

    variant = _Tetrominoes()

    def _attributes(self) -> tuple[str, ...]:
        return ("shape", "color")
