"""Small synthetic data files for the data tests (no test reads anything outside the repo)."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

BLOCK = 10  # side of the square each synthetic digit draws in its patch centre


def class_intensity(label: int) -> int:
    return 60 + 19 * label  # distinct per class, all > 0


def synthetic_digits(per_class: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """``(images [N, 28, 28] uint8, labels [N])``: digit ``c`` is a centred 10x10 square of
    intensity :func:`class_intensity` (so a pixel tells the class)."""
    labels = np.repeat(np.arange(10), per_class)
    images = np.zeros((len(labels), 28, 28), dtype=np.uint8)
    lo = (28 - BLOCK) // 2
    for i, c in enumerate(labels):
        images[i, lo:lo + BLOCK, lo:lo + BLOCK] = class_intensity(int(c))
    return images, labels


def idx_bytes(array: np.ndarray) -> bytes:
    codes = {np.dtype(np.uint8): 0x08}
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + b"".join(
        struct.pack(">I", d) for d in array.shape)
    return header + array.tobytes()


def write_mnist_dir(directory: Path, *, gz: bool = True, per_class: int = 3) -> Path:
    """The four MNIST IDX files (train and t10k) of synthetic digits in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    images, labels = synthetic_digits(per_class)
    files = {
        "train-images-idx3-ubyte": images, "train-labels-idx1-ubyte": labels.astype(np.uint8),
        "t10k-images-idx3-ubyte": images[::-1].copy(), "t10k-labels-idx1-ubyte": labels[::-1].astype(np.uint8),
    }
    for name, array in files.items():
        data = idx_bytes(array)
        if gz:
            (directory / f"{name}.gz").write_bytes(gzip.compress(data, mtime=0))
        else:
            (directory / name).write_bytes(data)
    return directory


# ---------------------------------------------------------------- DeepMind multi-object records

def clevr_example(objects, *, entities=11, h=240, w=320):
    """A record in the ``clevr_with_masks`` layout. ``objects``: list of
    ``(y0, y1, x0, x1, shape, color, size, material)`` rectangles with 1-based attribute codes."""
    image = np.zeros((h, w, 3), np.uint8)
    image[...] = 40  # grey floor
    masks = np.zeros((entities, h, w, 1), np.uint8)
    masks[0, ..., 0] = 255
    codes = {k: np.zeros(entities, np.uint8) for k in ("shape", "color", "size", "material")}
    visibility = np.zeros(entities, np.float32)
    visibility[0] = 1
    for e, (y0, y1, x0, x1, shape, color, size, material) in enumerate(objects, start=1):
        masks[:, y0:y1, x0:x1, 0] = 0
        masks[e, y0:y1, x0:x1, 0] = 255
        image[y0:y1, x0:x1] = (20 * e, 255 - 20 * e, 7 * e)
        for k, v in zip(codes, (shape, color, size, material)):
            codes[k][e] = v
        visibility[e] = 1
    return {
        "image": image, "mask": masks, "visibility": visibility,
        "x": np.zeros(entities, np.float32), "y": np.zeros(entities, np.float32),
        "z": np.zeros(entities, np.float32), "rotation": np.zeros(entities, np.float32),
        "pixel_coords": np.zeros((entities, 3), np.float32), **codes,
    }


def tetrominoes_example(item):
    """A generated :class:`~tusk.data.Tetrominoes` item in the DeepMind record layout."""
    from tusk.data import COLORS

    masks = item["masks"].numpy()
    n, h, w = masks.shape
    dm_masks = np.zeros((n + 1, h, w, 1), np.uint8)
    dm_masks[0, ..., 0] = np.where(masks.any(0), 0, 255)
    dm_masks[1:, ..., 0] = masks * 255
    color = np.zeros((n + 1, 3), np.float32)
    color[1:] = COLORS[item["color"].numpy()]
    shape = np.zeros(n + 1, np.float32)
    shape[1:] = item["shape"].numpy() + 1
    return {
        "image": (item["image"].numpy().transpose(1, 2, 0) * 255).round().astype(np.uint8),
        "mask": dm_masks, "x": np.zeros(n + 1, np.float32), "y": np.zeros(n + 1, np.float32),
        "shape": shape, "color": color, "visibility": np.ones(n + 1, np.float32),
    }


def clevr_object_counts(records: int, seed: int = 0) -> np.ndarray:
    """Objects per scene as in ``clevr_with_masks``: 3 to 10, uniform (so about half of the
    scenes have at most 6)."""
    return np.random.default_rng(seed).integers(3, 11, size=records)


def clevr_scene(count: int, record: int):
    """``count`` 20x20 objects on a 2x5 grid inside both CLEVR crops, attribute codes varying
    with the object and the record (1-based, as DeepMind stores them)."""
    return [(50 + 70 * (j // 5), 70 + 70 * (j // 5), 75 + 35 * (j % 5), 95 + 35 * (j % 5),
             1 + j % 3, 1 + (j + record) % 8, 1 + j % 2, 1 + (j // 2) % 2) for j in range(count)]


# ---------------------------------------------------------------- published MNIST-Hard (MIST layout)

def write_mist_dir(directory: Path, sizes=None, *, stored: int = 80, seed: int = 0) -> Path:
    """A directory in the MIST ``mnist_hard`` layout: scenes of the generator (synthetic digits)
    as RGB PNGs of ``stored`` px (nearest upscaling of the 80 px canvas), listed in
    ``{split}.txt``, with ``{split}_labels.txt`` and ``{split}_keypoints.npy`` (x, y, half box
    side, stored pixels). ``sizes``: images per split (default train 6, test 4)."""
    from PIL import Image

    from tusk.data import MnistHard

    sizes = sizes or {"train": 6, "test": 4}
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "images").mkdir(exist_ok=True)
    scale = stored / 80
    for offset, (split, count) in enumerate(sizes.items()):
        scenes = MnistHard(synthetic_digits(), count, seed=seed + offset)
        names, label_lines, keypoints = [], [], []
        for i in range(count):
            canvas, centers, labels, _ = scenes.scene(i)
            name = f"images/{split}_{i:05d}.png"
            Image.fromarray(np.repeat(canvas[..., None], 3, axis=2)).resize((stored, stored), Image.NEAREST) \
                .save(directory / name)
            names.append(name)
            label_lines.append(",".join(str(int(v)) for v in labels))
            xy = (centers + 0.5) * scale - 0.5
            keypoints.append(np.concatenate([xy, np.full((len(xy), 1), 10 * scale)], axis=1))
        (directory / f"{split}.txt").write_text("\n".join(names) + "\n")
        (directory / f"{split}_labels.txt").write_text("\n".join(label_lines) + "\n")
        np.save(directory / f"{split}_keypoints.npy", np.stack(keypoints).astype(np.float32))
    return directory
