"""The published benchmark layouts and their protocols: the MIST MNIST-Hard directory, the
official and paper splits of the DeepMind records (realistic CLEVR object counts), resizing."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from data_fixtures import (clevr_example, clevr_object_counts, clevr_scene, synthetic_digits, tetrominoes_example,
                           write_mist_dir, write_mnist_dir)
from tusk.config import DataConfig
from tusk.data import DataFileError, MnistHard, Tetrominoes, build_dataset
from tusk.data.mist import MistMnistHard, is_mist_dir
from tusk.data.multi_object import Clevr6, TetrominoesRecords
from tusk.data.source import data_source
from tusk.data.tfrecord import write_examples
from tusk.training.data import build_dataset as build_run_dataset


# ---------------------------------------------------------------- MIST directory

@pytest.mark.parametrize("stored", [80, 160])
def test_mist_reader_scales_boxes_and_centres(tmp_path, stored):
    root = write_mist_dir(tmp_path / "mnist_hard", stored=stored)
    generator = MnistHard(synthetic_digits(), 4, seed=1)  # the test split of the fixture
    test = MistMnistHard(root, "test")
    assert len(test) == 4 and test.num_digits == 9
    for i in range(4):
        got, want = test[i], generator[i]
        assert got["image"].shape == (3, 80, 80)
        # nearest 2x upscaling undone by 2x2 area averaging: the very canvas
        torch.testing.assert_close(got["image"], want["image"], atol=1e-6, rtol=0)
        torch.testing.assert_close(got["centers"], want["centers"], atol=1e-4, rtol=0)
        torch.testing.assert_close(got["boxes"], want["boxes"], atol=1e-4, rtol=0)
        assert torch.equal(got["labels"], want["labels"])
    resized = MistMnistHard(root, "test", image_size=40, length=2)
    item = resized[1]
    assert len(resized) == 2 and item["image"].shape == (3, 40, 40)
    boxes = generator[1]["boxes"].numpy()
    np.testing.assert_allclose(item["boxes"].numpy(), (boxes + 0.5) / 2 - 0.5, atol=1e-4)  # side 20 -> 10
    np.testing.assert_allclose(item["boxes"][:, 2] - item["boxes"][:, 0], 10.0, atol=1e-4)


def test_mist_errors_name_the_file(tmp_path):
    root = write_mist_dir(tmp_path / "mnist_hard")
    # a line-count mismatch between the listing files
    labels = root / "test_labels.txt"
    labels.write_text("\n".join(labels.read_text().splitlines()[:3]) + "\n")
    with pytest.raises(DataFileError, match=r"test_labels.txt: 3 lines but the image list has 4"):
        MistMnistHard(root, "test")
    labels.write_text("1,2,3\n" * 4)
    with pytest.raises(DataFileError, match=r"test_keypoints.npy: 9 digits per image but the labels have 3"):
        MistMnistHard(root, "test")
    labels.write_text("1,2,3,4,5,6,7,8,9\n" * 3 + "1,2,3\n")
    with pytest.raises(DataFileError, match=r"test_labels.txt: line 4 has 3 labels, line 1 has 9"):
        MistMnistHard(root, "test")
    labels.write_text("1,2,3,4,5,6,7,8,x\n" * 4)
    with pytest.raises(DataFileError, match=r"test_labels.txt: line 1: expected comma-separated integers"):
        MistMnistHard(root, "test")
    labels.unlink()
    with pytest.raises(FileNotFoundError, match="test_labels.txt"):
        MistMnistHard(root, "test")
    np.save(root / "train_keypoints.npy", np.zeros((5, 9, 3), np.float32))
    with pytest.raises(DataFileError, match=r"train_keypoints.npy: 5 rows but the image list has 6"):
        MistMnistHard(root, "train")
    (root / "train_keypoints.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(DataFileError, match=r"train_keypoints.npy: cannot read npy"):
        MistMnistHard(root, "train")


def test_mist_missing_and_corrupt_images(tmp_path):
    root = write_mist_dir(tmp_path / "mnist_hard")
    (root / "images" / "test_00002.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"test_00002.png \(listed in test.txt; 1 of 4"):
        MistMnistHard(root, "test")
    png = root / "images" / "train_00003.png"
    png.write_bytes(png.read_bytes()[:60])  # a cut-off download
    train = MistMnistHard(root, "train")  # listing fine: construction does not decode
    with pytest.raises(DataFileError, match="train_00003.png: cannot decode image"):
        train[3]
    with pytest.raises(DataFileError, match="train_00003.png"):
        train.verify(progress=False)


def test_mnist_hard_root_selects_reader_or_generator(tmp_path):
    mist = write_mist_dir(tmp_path / "mnist_hard")
    idx = write_mnist_dir(tmp_path / "idx")
    npz = tmp_path / "digits.npz"
    np.savez(npz, images=synthetic_digits()[0], labels=synthetic_digits()[1])
    assert is_mist_dir(mist) and not is_mist_dir(idx) and not is_mist_dir(npz)
    assert isinstance(build_dataset("mnist_hard", "test", root=mist), MistMnistHard)
    assert isinstance(build_dataset("mnist_hard", "test", root=idx, length=2), MnistHard)
    assert isinstance(build_dataset("mnist_hard", "test", root=npz, length=2), MnistHard)
    published, generated = data_source("mnist_hard", mist), data_source("mnist_hard", npz)
    assert published["kind"] == "published" and published["benchmark"]
    assert generated["kind"] == "generated" and not generated["benchmark"]
    assert "npz of digits" in generated["description"] and str(npz) in generated["description"]
    with pytest.raises(ValueError, match="split sizes apply to the DeepMind records"):
        build_dataset("mnist_hard", "test", root=mist, split_test=3)


# ---------------------------------------------------------------- CLEVR6 splits, realistic counts

RECORDS = 30
COUNTS = clevr_object_counts(RECORDS)  # 3..10 objects; 10 of the 30 scenes have at most 6
QUALIFYING = [i for i, c in enumerate(COUNTS) if c <= 6]


@pytest.fixture(scope="module")
def clevr_file(tmp_path_factory):
    directory = tmp_path_factory.mktemp("clevr")
    return write_examples(directory / "clevr_with_masks_train.tfrecords",
                          [clevr_example(clevr_scene(int(c), i)) for i, c in enumerate(COUNTS)], compress=True)


def test_clevr6_official_split(clevr_file, tmp_path):
    assert len(QUALIFYING) == 10
    # the first 24 records are read; their qualifying scenes, the last 3 of them for test
    first = [i for i in QUALIFYING if i < 24]
    kwargs = dict(records=24, test_scenes=3, image_size=112, progress=False, cache_dir=tmp_path)
    train, test = Clevr6(clevr_file, "train", **kwargs), Clevr6(clevr_file, "test", **kwargs)
    assert [train[i]["index"] for i in range(len(train))] == first[:-3]
    assert [test[i]["index"] for i in range(len(test))] == first[-3:]
    item = test[0]
    assert len(item["shape"]) == COUNTS[first[-3]] and item["masks"].shape[1:] == (112, 112)
    # official centre crop: rows 24:216, columns 64:256; object 0 at rows 50:70, columns 75:95
    ys, xs = np.nonzero(Clevr6(clevr_file, "test", **{**kwargs, "image_size": 192})[0]["masks"][0].numpy())
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (50 - 24, 69 - 24, 75 - 64, 94 - 64)
    # the official code resizes image and masks with torch's legacy nearest
    nearest = Clevr6(clevr_file, "test", **kwargs, resize="nearest")[0]
    native = Clevr6(clevr_file, "test", **{**kwargs, "image_size": 192})[0]
    expected = F.interpolate(native["image"][None], size=(112, 112), mode="nearest")[0]
    torch.testing.assert_close(nearest["image"], expected, atol=0, rtol=0)
    expected = F.interpolate(native["masks"][None].float(), size=(112, 112), mode="nearest")[0].bool()
    assert torch.equal(nearest["masks"], expected)


def test_clevr6_paper_split_and_sizes_from_the_config(clevr_file, tmp_path):
    config = DataConfig(dataset="clevr6", root=str(clevr_file.parent), protocol="paper", split_train=5,
                        split_test=3, image_size=64)
    train, test = build_run_dataset(config, "train"), build_run_dataset(config, "test")
    assert [train[i]["index"] for i in range(len(train))] == QUALIFYING[:5]
    assert [test[i]["index"] for i in range(len(test))] == QUALIFYING[5:8]
    # the paper's crop (rows 29:221) and smooth resizing: object 0 at rows 50:70 -> 21:41 -> /3
    ys, _ = np.nonzero(build_run_dataset(DataConfig(**{**vars(config), "image_size": 192}), "test")[0]["masks"][0].numpy())
    assert (ys.min(), ys.max()) == (50 - 29, 69 - 29)


def test_clevr6_too_few_scenes_reports_the_counts(clevr_file, tmp_path):
    # the default official split reads 70,000 records
    with pytest.raises(DataFileError, match=r"holds only 30 records; the official protocol reads the first 70000"):
        Clevr6(clevr_file, progress=False, cache_dir=tmp_path)
    with pytest.raises(DataFileError, match=r"its first 30 records hold 10 scenes with at most 6 objects; the "
                                            r"official protocol needs more than 10000"):
        Clevr6(clevr_file, records=30, progress=False, cache_dir=tmp_path)
    # the paper text's 60k + 10k, as on the real file: reported after the file is read
    with pytest.raises(DataFileError, match=r"holds only 10 scenes with at most 6 objects in its 30 records; "
                                            r"the paper protocol needs 70000 \(60000 train \+ 10000 test\)"):
        Clevr6(clevr_file, protocol="paper", progress=False, cache_dir=tmp_path)
    assert not list(tmp_path.glob("*.h5*"))  # nothing cached from a failed split
    with pytest.raises(ValueError, match="official protocol has no train size"):
        Clevr6(clevr_file, train_scenes=5, progress=False, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="takes no records count"):
        Clevr6(clevr_file, protocol="paper", records=5, progress=False, cache_dir=tmp_path)


# ---------------------------------------------------------------- Tetrominoes records

def test_tetrominoes_official_split_and_nearest_resize(tmp_path):
    generator = Tetrominoes(8, seed=3)
    write_examples(tmp_path / "tetrominoes_train.tfrecords", [tetrominoes_example(generator[i]) for i in range(8)])
    # official: the first `records` records, the last `test` of them for test (no filter)
    test = TetrominoesRecords(tmp_path, "test", records=7, test_scenes=2, image_size=112, resize="nearest",
                              progress=False)
    assert [test[i]["index"] for i in range(2)] == [5, 6]
    assert len(TetrominoesRecords(tmp_path, "train", records=7, test_scenes=2, progress=False)) == 5
    item, native = test[0], generator[5]
    # 35 -> 112 as the official code: torch's legacy nearest, each pixel repeated 3 or 4 times
    torch.testing.assert_close(item["image"], F.interpolate(native["image"][None], size=112, mode="nearest")[0],
                               atol=1 / 255, rtol=0)
    assert torch.equal(item["masks"], F.interpolate(native["masks"][None].float(), size=112)[0].bool())
    # the generator resizes the same way when asked
    generated = Tetrominoes(8, seed=3, image_size=112, resize="nearest")[5]
    assert torch.equal(generated["masks"], item["masks"])
    smooth = Tetrominoes(8, seed=3, image_size=112)[5]
    assert not torch.equal(smooth["image"], generated["image"])  # bilinear blends the piece edges
    with pytest.raises(ValueError, match="resize must be one of smooth, nearest"):
        Tetrominoes(2, resize="bicubic")


def test_tetrominoes_damaged_records_are_named(tmp_path):
    generator = Tetrominoes(4, seed=3)
    path = write_examples(tmp_path / "tetrominoes_train.tfrecords",
                          [tetrominoes_example(generator[i]) for i in range(4)])
    raw = bytearray(path.read_bytes())
    raw[len(raw) * 5 // 8] ^= 0x10  # inside record 2's data
    path.write_bytes(bytes(raw))
    with pytest.raises(DataFileError, match="tetrominoes_train.tfrecords: record 2: data checksum"):
        TetrominoesRecords(tmp_path, records=4, test_scenes=1, progress=False)
    path.write_bytes(bytes(raw[: len(raw) // 3]))  # cut off inside record 1
    with pytest.raises(DataFileError, match="tetrominoes_train.tfrecords: record 1: truncated"):
        TetrominoesRecords(tmp_path, records=4, test_scenes=1, progress=False)
    assert not list(tmp_path.glob("*.h5*"))
