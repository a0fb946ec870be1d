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

Splits: :mod:`tusk.data.record_splits` (``protocol="official"``, the default, is the
authors' code; ``"paper"`` the paper's text), sizes settable. Per dataset:

- **CLEVR6**: scenes with at most 6 objects (counted as the entities with a colour code; the
  official code tests that entity slot 7 is empty, the same on DeepMind's packed records).
  Official: qualifying scenes of the first 70k records, the last 10k for test; the image is
  centre-cropped to rows 24:216, columns 64:256 (192x192). Paper: the first 70k qualifying
  scenes, 60k train and 10k test, cropped to rows 29:221, columns 64:256 as IODINE and Slot
  Attention do. Resized to ``image_size`` (default 128; TUSK used 112). Attributes ``shape``
  (3), ``color`` (8), ``size`` (2), ``material`` (2), zero-based in DeepMind's coding.
  Objects with no pixel left in the crop are dropped.
- **Tetrominoes**: no filter; the first 60k records, 50k train and 10k test (both protocols;
  the paper's "80K images" does not match the 1M-record file); 35x35 native.
  ``shape`` = DeepMind's shape code - 1 (its own order, not :data:`~tusk.data.SHAPES`;
  prototype mappings are learned, so the order does not matter), ``color`` = index in
  :data:`~tusk.data.COLORS`.

Resizing (``resize``): ``"smooth"`` (default: area averaging when shrinking, bilinear when
enlarging, masks by ``nearest-exact``) or ``"nearest"`` (torch's legacy nearest for image and
masks: the official code's ``F.interpolate`` default, 35 -> 112 and 192 -> 112). The packaged
``tetrominoes`` and ``clevr6`` configs choose ``nearest``, as the official code.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ._common import as_size, check_index, check_resize, mask_centroids, resize_item_arrays, scale_xy
from .errors import DataFileError, missing_file
from .example_proto import decode_example
from .record_splits import RecordSplit
from .tetrominoes import COLORS
from .tfrecord import iter_records

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
    default_size: tuple[int, int]
    #: Split sizes of each protocol (see :mod:`tusk.data.record_splits`).
    split_defaults: dict[str, dict[str, int]]
    #: Features :meth:`select` reads (decoded alone, before the whole record).
    select_keys: frozenset[str] = frozenset()
    #: What qualifying scenes are, for messages.
    what = "scenes"

    def crop(self, protocol: str) -> tuple[slice, slice]:
        return (slice(None), slice(None))

    def select(self, example: dict) -> bool:
        return True

    def convert(self, example: dict, crop: tuple[slice, slice]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """-> ``(image [h, w, 3] uint8 cropped, segmentation [h, w] uint8,
        attributes [E, 4] int16 (-1 = none), visible [E] bool)``."""
        raise NotImplementedError


class _Clevr(_Variant):
    file = "clevr_with_masks_train.tfrecords"
    native = (240, 320)
    entities = 11
    default_size = (128, 128)
    split_defaults = {"official": {"records": 70_000, "test": 10_000},
                      "paper": {"train": 60_000, "test": 10_000}}
    select_keys = frozenset({"color"})
    #: official: ``center_crop(192)`` of the authors' code; paper: IODINE / Slot Attention's crop.
    crops = {"official": (slice(24, 216), slice(64, 256)), "paper": (slice(29, 221), slice(64, 256))}

    def __init__(self, max_objects: int = 6):
        self.max_objects = max_objects
        self.what = f"scenes with at most {max_objects} objects"

    def crop(self, protocol):
        return self.crops[protocol]

    def select(self, example):
        colour = _uint8(example, "color", (self.entities,))  # DeepMind: 0 = no object in the slot
        return int(np.count_nonzero(colour[1:])) <= self.max_objects

    def convert(self, example, crop):
        h, w = self.native
        image = _uint8(example, "image", (h, w, 3))[crop]
        masks = _uint8(example, "mask", (self.entities, h, w, 1))[..., 0]
        seg = _segmentation(masks)[crop]
        attrs = np.stack([_uint8(example, k, (self.entities,)).astype(np.int16) - 1 for k in ATTRIBUTE_NAMES], 1)
        visible = _floats(example, "visibility", (self.entities,)) > 0
        return np.ascontiguousarray(image), np.ascontiguousarray(seg), attrs, visible


class _Tetrominoes(_Variant):
    file = "tetrominoes_train.tfrecords"
    native = (35, 35)
    entities = 4
    default_size = (35, 35)
    split_defaults = {"official": {"records": 60_000, "test": 10_000},
                      "paper": {"train": 50_000, "test": 10_000}}

    def convert(self, example, crop):
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


def build_cache(source: str | os.PathLike, cache: str | os.PathLike, variant: _Variant, split: RecordSplit, *,
                verify: bool = True, progress: bool = True) -> Path:
    """Convert the scenes ``split`` collects from ``source`` into the HDF5 ``cache``.

    Raises :class:`DataFileError` naming ``source`` (with the counts found) when the file
    holds too few qualifying scenes for the split; no cache is left behind then.
    """
    source, cache = Path(source), Path(cache)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(cache.name + ".partial")
    bar = None
    if progress:
        from tqdm import tqdm

        total, unit = (split.records, "record") if split.wanted is None else (split.wanted, "scene")
        bar = tqdm(total=total, desc=f"caching {source.name}", unit=unit, leave=False)
    try:
        _convert(source, tmp, variant, split, verify, bar)
    except BaseException:
        tmp.unlink(missing_ok=True)  # never leave a half-written cache behind
        raise
    finally:
        if bar is not None:
            bar.close()
    os.replace(tmp, cache)
    return cache


def _convert(source: Path, tmp: Path, variant: _Variant, split: RecordSplit, verify: bool, bar) -> None:
    import h5py

    crop = variant.crop(split.protocol)
    capacity = split.wanted if split.wanted is not None else split.records
    written = records_read = 0
    with h5py.File(tmp, "w") as f:
        datasets = None
        for index, record in enumerate(iter_records(source, verify=verify)):
            if split.wanted is not None and written == split.wanted:
                break
            if split.records is not None and index == split.records:
                break
            records_read = index + 1
            if bar is not None and split.wanted is None:
                bar.update(1)
            try:
                if variant.select_keys and not variant.select(decode_example(record, variant.select_keys)):
                    continue
                example = decode_example(record)
                if not variant.select(example):
                    continue
                image, seg, attrs, visible = variant.convert(example, crop)
            except ValueError as exc:
                raise DataFileError(source, f"record {index}: {exc}") from exc
            if datasets is None:
                datasets = _create_datasets(f, capacity, image, seg, attrs, visible)
            for key, value in (("image", image), ("segmentation", seg), ("attributes", attrs),
                               ("visible", visible), ("record", index)):
                datasets[key][written] = value
            written += 1
            if bar is not None and split.wanted is not None:
                bar.update(1)
        problem = split.check_available(written, records_read, variant.what)
        if problem is not None:
            raise DataFileError(source, problem)
        for dataset in datasets.values():
            dataset.resize(written, axis=0)
        f.attrs["source"] = source.name
        f.attrs["split"] = split.tag()
        f.attrs["count"] = written
        f.attrs["records_read"] = records_read


def _create_datasets(f, capacity: int, image, seg, attrs, visible) -> dict:
    """Resizable per-scene datasets, allocated for ``capacity`` scenes and cut to size at the end
    (unwritten chunks take no space)."""
    chunk = (1,) + image.shape[:2]

    def create(name, shape, dtype, **kwargs):
        return f.create_dataset(name, (capacity,) + shape, dtype, maxshape=(None,) + shape, **kwargs)

    return {
        "image": create("image", image.shape, np.uint8, chunks=chunk + (3,), compression="lzf"),
        "segmentation": create("segmentation", seg.shape, np.uint8, chunks=chunk, compression="lzf"),
        "attributes": create("attributes", attrs.shape, np.int16, chunks=(1024,) + attrs.shape),
        "visible": create("visible", visible.shape, bool, chunks=(1024,) + visible.shape),
        "record": create("record", (), np.int64, chunks=(4096,)),
    }


class MultiObjectRecords(Dataset):
    """A split of a DeepMind multi-object dataset (see the module doc); use :class:`Clevr6`
    or :class:`TetrominoesRecords`.

    Items: ``image [3, H, W]`` float32 in [0, 1]; ``masks [n, H, W]`` bool (objects only);
    ``centers [n, 2]`` float32 mask centroids (x, y) (native masks, mapped to the output
    size); ``shape``, ``color`` int64 ``[n]`` (CLEVR also ``size``, ``material``);
    ``index`` the scene's record number in the TFRecord file.
    """

    variant: _Variant

    def __init__(self, root: str | os.PathLike, split: str = "train", *, protocol: str | None = None,
                 records: int | None = None, train_scenes: int | None = None, test_scenes: int | None = None,
                 image_size=None, resize: str | None = None, length: int | None = None,
                 cache_dir: str | os.PathLike | None = None, verify: bool = True, progress: bool = True):
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        self.split_rule = RecordSplit.resolve(protocol, self.variant.split_defaults, records=records,
                                              train=train_scenes, test=test_scenes)
        self.image_size = as_size(image_size, self.variant.default_size)
        self.resize = check_resize(resize)
        self.source = _resolve_file(root, self.variant.file)
        cache_dir = Path(cache_dir) if cache_dir is not None else self.source.parent
        self.cache = cache_dir / f"{self.source.stem}.{self._cache_tag()}.{self.split_rule.tag()}.h5"
        if not self.cache.is_file():
            build_cache(self.source, self.cache, self.variant, self.split_rule, verify=verify, progress=progress)
        available = self._check_cache()
        start, stop = self.split_rule.bounds(split, available)
        if length is not None:
            stop = min(stop, start + int(length))
        self.start, self.stop = start, stop
        self.split = split
        self._h5 = None

    def _cache_tag(self) -> str:
        return type(self).__name__.lower()

    def _check_cache(self) -> int:
        """Validate the cache against the split rule; returns the number of cached scenes."""
        import h5py

        try:
            with h5py.File(self.cache, "r") as f:
                count = int(f.attrs["count"])
                records_read = int(f.attrs["records_read"])
                sizes = {k: f[k].shape[0] for k in ("image", "segmentation", "attributes", "visible", "record")}
        except (OSError, KeyError) as exc:
            raise DataFileError(self.cache, f"unreadable cache ({exc}); delete it to rebuild") from exc
        if set(sizes.values()) != {count}:
            raise DataFileError(self.cache, "inconsistent cache (interrupted write?); delete it to rebuild")
        problem = self.split_rule.check_available(count, records_read, self.variant.what)
        if problem is not None:
            raise DataFileError(self.source, problem)
        return count

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
        img, masks = resize_item_arrays(img, masks, self.image_size, self.resize)
        item = {
            "image": torch.from_numpy(np.ascontiguousarray(img)),
            "masks": torch.from_numpy(np.ascontiguousarray(masks)),
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

    ``root``: the directory holding the file (or the file itself); ``protocol``
    (``"official"`` or ``"paper"``) and ``records`` / ``train_scenes`` / ``test_scenes`` the
    split (:mod:`tusk.data.record_splits`); ``max_objects`` (6) the filter; ``resize``
    ``"smooth"`` or ``"nearest"``.
    """

    def __init__(self, root, split: str = "train", *, max_objects: int = 6, **kwargs):
        self.variant = _Clevr(max_objects)
        super().__init__(root, split, **kwargs)

    def _cache_tag(self) -> str:
        return f"clevr{self.variant.max_objects}"  # the split rule's tag names protocol (and crop)


class TetrominoesRecords(MultiObjectRecords):
    """Tetrominoes from the published ``tetrominoes_train.tfrecords`` (see the module doc);
    :class:`~tusk.data.Tetrominoes` generates equivalent scenes without any file."""

    variant = _Tetrominoes()

    def _attributes(self) -> tuple[str, ...]:
        return ("shape", "color")
