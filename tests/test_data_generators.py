"""MNIST-Hard and Tetrominoes generators, collate and build_dataset."""
import numpy as np
import pytest
import torch

from data_fixtures import BLOCK, class_intensity, synthetic_digits
from tusk.data import (COLORS, SHAPES, DataFileError, MnistHard, Tetrominoes, build_dataset, collate,
                       load_scenes)
from tusk.data.tetrominoes import shape_mask


@pytest.fixture(scope="module")
def digits():
    return synthetic_digits()


# ---------------------------------------------------------------- MNIST-Hard

def test_mnist_hard_item_format(digits):
    item = MnistHard(digits, 5)[0]
    assert item["image"].shape == (3, 80, 80) and item["image"].dtype == torch.float32
    assert item["centers"].shape == (9, 2) and item["centers"].dtype == torch.float32
    assert item["boxes"].shape == (9, 4) and item["boxes"].dtype == torch.float32
    assert item["labels"].shape == (9,) and item["labels"].dtype == torch.int64
    assert 0 <= item["image"].min() and item["image"].max() <= 1
    assert torch.equal(item["image"][0], item["image"][1]) and torch.equal(item["image"][0], item["image"][2])


def test_mnist_hard_labels_match_pixels(digits):
    ds = MnistHard(digits, 20, seed=3)
    for i in range(len(ds)):
        item = ds[i]
        img = (item["image"][0] * 255).round().to(torch.int64)
        for (x, y), c in zip(item["centers"].tolist(), item["labels"].tolist()):
            # the 10x10 class square covers the patch centre (13.5 + offset) +- 5 px
            assert img[int(y), int(x)] == class_intensity(c)
            assert img[int(y) + 1, int(x) + 1] == class_intensity(c)
        # everything drawn is a digit square: as many lit pixels as 9 disjoint squares
        assert int((img > 0).sum()) == 9 * BLOCK * BLOCK


def test_mnist_hard_geometry(digits):
    ds = MnistHard(digits, 30)
    for i in range(len(ds)):
        item = ds[i]
        c = item["centers"].numpy()
        d = np.sqrt(((c[:, None] - c[None]) ** 2).sum(-1)) + np.eye(9) * 1e9
        assert d.min() >= ds.min_distance
        b = item["boxes"].numpy()
        np.testing.assert_allclose(b[:, 2:] - b[:, :2], 20.0)
        np.testing.assert_allclose((b[:, 2:] + b[:, :2]) / 2, c)
        assert b.min() >= -0.5 and b.max() <= 79.5  # inside the image extent


def test_mnist_hard_deterministic_per_seed_and_index(digits):
    a, b = MnistHard(digits, 10, seed=7), MnistHard(digits, 10, seed=7)
    for i in (0, 4, 9):
        for key in ("image", "centers", "labels"):
            assert torch.equal(a[i][key], b[i][key])
    assert torch.equal(a[-1]["image"], a[9]["image"])
    assert not torch.equal(a[0]["centers"], a[1]["centers"])
    c = MnistHard(digits, 10, seed=8)
    assert not torch.equal(a[0]["centers"], c[0]["centers"])


def test_mnist_hard_resized(digits):
    native, small = MnistHard(digits, 3, seed=1), MnistHard(digits, 3, seed=1, image_size=40)
    a, b = native[2], small[2]
    assert b["image"].shape == (3, 40, 40)
    np.testing.assert_allclose(b["centers"], (a["centers"] + 0.5) / 2 - 0.5)
    np.testing.assert_allclose(b["boxes"][:, 2:] - b["boxes"][:, :2], 10.0)
    # area averaging by 2 preserves the mean intensity
    assert abs(float(a["image"].mean() - b["image"].mean())) < 1e-6
    # each 2x2 block averages exactly
    np.testing.assert_allclose(b["image"][0], a["image"][0].reshape(40, 2, 40, 2).mean((1, 3)), atol=1e-6)


def test_mnist_hard_save_load_roundtrip(digits, tmp_path):
    ds = MnistHard(digits, 6, seed=2, image_size=64)
    path = ds.save_scenes(tmp_path / "scenes.npz")
    loaded = load_scenes(path)
    assert len(loaded) == 6
    for i in range(6):
        for key in ("image", "centers", "boxes", "labels"):
            torch.testing.assert_close(loaded[i][key], ds[i][key], rtol=0, atol=0)
    subset = load_scenes(ds.save_scenes(tmp_path / "subset.npz", indices=[4, 1]))
    assert torch.equal(subset[0]["image"], ds[4]["image"])


def test_mnist_hard_load_scenes_errors(tmp_path):
    bad = tmp_path / "broken.npz"
    bad.write_bytes(b"PK\x03\x04 this is not a zip")
    with pytest.raises(DataFileError, match="broken.npz"):
        load_scenes(bad)
    with pytest.raises(FileNotFoundError, match="nothere.npz"):
        load_scenes(tmp_path / "nothere.npz")


@pytest.mark.parametrize("kwargs, error", [
    (dict(length=-1), ValueError), (dict(seed=-2), ValueError), (dict(num_digits=0), ValueError),
    (dict(image_size=0), ValueError), (dict(min_distance=-1.0), ValueError),
])
def test_mnist_hard_bad_arguments(digits, kwargs, error):
    with pytest.raises(error):
        MnistHard(digits, **kwargs)


def test_mnist_hard_infeasible_layout_is_an_error(digits):
    with pytest.raises(RuntimeError, match="min_distance"):
        MnistHard(digits, 1, num_digits=9, min_distance=40)[0]


def test_mnist_hard_index_errors(digits):
    ds = MnistHard(digits, 3)
    with pytest.raises(IndexError):
        ds[3]
    with pytest.raises(TypeError):
        ds["0"]


# ---------------------------------------------------------------- Tetrominoes

def test_tetrominoes_shapes_table():
    assert len(SHAPES) == 19 and len(COLORS) == 6
    masks = {shape_mask(s, 1).tobytes() + bytes(shape_mask(s, 1).shape) for s in range(19)}
    assert len(masks) == 19  # all distinct
    assert all(shape_mask(s, 5).sum() == 100 for s in range(19))


def test_tetrominoes_item_format():
    item = Tetrominoes(4)[0]
    assert item["image"].shape == (3, 35, 35) and item["image"].dtype == torch.float32
    assert item["masks"].shape == (3, 35, 35) and item["masks"].dtype == torch.bool
    assert item["centers"].shape == (3, 2) and item["centers"].dtype == torch.float32
    assert item["shape"].dtype == torch.int64 and item["color"].dtype == torch.int64


def _find_offset(mask, template):
    ys, xs = np.nonzero(mask)
    y0, x0 = ys.min(), xs.min()
    h, w = template.shape
    return y0, x0, h, w


def test_tetrominoes_masks_pixels_and_labels_agree():
    ds = Tetrominoes(60, seed=5)
    for i in range(len(ds)):
        item = ds[i]
        img, masks = item["image"].numpy(), item["masks"].numpy()
        assert masks.sum(0).max() <= 1  # non-overlapping
        assert np.all(img[:, ~masks.any(0)] == 0)  # black background
        for k in range(3):
            s, c = int(item["shape"][k]), int(item["color"][k])
            template = shape_mask(s)
            y0, x0, h, w = _find_offset(masks[k], template)
            expected = np.zeros_like(masks[k])
            expected[y0:y0 + h, x0:x0 + w] = template
            assert np.array_equal(masks[k], expected)  # the labelled shape, exactly
            assert np.all(img[:, masks[k]] == COLORS[c][:, None])  # the labelled colour
            ys, xs = np.nonzero(masks[k])
            np.testing.assert_allclose(item["centers"][k], [xs.mean(), ys.mean()], atol=1e-5)


def test_tetrominoes_all_shapes_and_colours_occur():
    ds = Tetrominoes(300, seed=1)
    shapes = torch.cat([ds[i]["shape"] for i in range(len(ds))])
    colors = torch.cat([ds[i]["color"] for i in range(len(ds))])
    assert set(shapes.tolist()) == set(range(19)) and set(colors.tolist()) == set(range(6))


def test_tetrominoes_deterministic_and_seeded():
    a, b, c = Tetrominoes(10, seed=4), Tetrominoes(10, seed=4), Tetrominoes(10, seed=9)
    assert torch.equal(a[3]["image"], b[3]["image"]) and torch.equal(a[3]["masks"], b[3]["masks"])
    assert not torch.equal(a[3]["image"], a[4]["image"])
    assert not torch.equal(a[3]["image"], c[3]["image"])


def test_tetrominoes_resize():
    native, big, small = Tetrominoes(5, seed=2), Tetrominoes(5, seed=2, image_size=70), \
        Tetrominoes(5, seed=2, image_size=(20, 30))
    a, b, s = native[1], big[1], small[1]
    assert b["image"].shape == (3, 70, 70) and b["masks"].shape == (3, 70, 70)
    # an exact 2x enlargement: nearest masks are the kron of the native ones
    kron = np.kron(a["masks"].numpy(), np.ones((1, 2, 2), dtype=bool))
    assert np.array_equal(b["masks"].numpy(), kron)
    np.testing.assert_allclose(b["centers"], (a["centers"] + 0.5) * 2 - 0.5)
    # measured centroids of the resized masks agree with the mapped ones for an integer factor
    for k in range(3):
        ys, xs = np.nonzero(b["masks"][k].numpy())
        np.testing.assert_allclose(b["centers"][k], [xs.mean(), ys.mean()], atol=1e-4)
    assert s["image"].shape == (3, 20, 30) and s["masks"].shape == (3, 20, 30)
    assert 0 <= float(s["image"].min()) and float(s["image"].max()) <= 1


def test_tetrominoes_bad_arguments():
    with pytest.raises(ValueError):
        Tetrominoes(-1)
    with pytest.raises(ValueError):
        Tetrominoes(3, image_size=(0, 3))
    with pytest.raises(ValueError):
        Tetrominoes(3, block_size=9)


# ---------------------------------------------------------------- collate, build_dataset

def test_collate_stacks_images_and_lists_objects(digits):
    items = [Tetrominoes(4)[i] for i in range(4)]
    batch = collate(items)
    assert batch["image"].shape == (4, 3, 35, 35)
    assert isinstance(batch["masks"], list) and len(batch["masks"]) == 4
    assert isinstance(batch["shape"], list) and torch.equal(batch["shape"][2], items[2]["shape"])
    loader = torch.utils.data.DataLoader(MnistHard(digits, 6), batch_size=3, collate_fn=collate)
    first = next(iter(loader))
    assert first["image"].shape == (3, 3, 80, 80) and len(first["labels"]) == 3
    mixed = collate([{"image": torch.zeros(3, 2, 2), "landmarks": torch.zeros(5, 2), "name": "a"},
                     {"image": torch.ones(3, 2, 2), "landmarks": torch.ones(5, 2), "name": "b"}])
    assert mixed["landmarks"].shape == (2, 5, 2) and mixed["name"] == ["a", "b"]
    with pytest.raises(ValueError):
        collate([])
    with pytest.raises(ValueError, match="fields"):
        collate([{"image": torch.zeros(1)}, {"other": torch.zeros(1)}])


def test_build_dataset_generators(tmp_path, digits):
    train, test = build_dataset("tetrominoes"), build_dataset("tetrominoes", "test", image_size=64)
    assert len(train) == 50_000 and len(test) == 10_000
    assert test[0]["image"].shape == (3, 64, 64)
    assert not torch.equal(train[0]["masks"], build_dataset("tetrominoes", "val")[0]["masks"])
    np.savez(tmp_path / "d.npz", images=digits[0], labels=digits[1])
    ds = build_dataset("mnist_hard", "test", root=tmp_path / "d.npz", length=4, image_size=40)
    assert len(ds) == 4 and ds[0]["image"].shape == (3, 40, 40)
    with pytest.raises(ValueError, match="unknown dataset"):
        build_dataset("mnist_easy")
    with pytest.raises(ValueError, match="split"):
        build_dataset("tetrominoes", "training")


def test_collate_in_worker_processes_matches_in_process():
    ds = Tetrominoes(8, seed=3)
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=1, collate_fn=collate)
    for b, batch in enumerate(loader):
        direct = collate([ds[4 * b + i] for i in range(4)])
        assert torch.equal(batch["image"], direct["image"])
        for key in ("masks", "centers", "shape", "color"):
            assert all(torch.equal(x, y) for x, y in zip(batch[key], direct[key]))
