"""CelebA (in the wild + MAFL) and Human3.6M readers on small files written by the tests."""
import numpy as np
import pytest
import torch
from PIL import Image

from tusk.data import H36M_SWAP_PAIRS, CelebA, DataFileError, H36M, build_dataset, collate

# name: (height, width, face box (x, y, w, h), landmarks)
FACES = {
    "000001.jpg": (40, 50, (5, 5, 40, 30), [[10, 12], [30, 12], [20, 20], [12, 30], [28, 30]]),
    "000002.jpg": (60, 40, (0, 0, 10, 10), [[1, 1], [2, 2], [3, 3], [4, 4], [5, 5]]),  # 4%: dropped
    "000003.jpg": (32, 32, (2, 2, 20, 20), [[8, 8], [20, 8], [14, 14], [9, 20], [19, 20]]),
    "000004.jpg": (36, 48, (4, 4, 30, 30), [[6, 6], [26, 6], [16, 16], [8, 24], [24, 24]]),
    "000005.jpg": (50, 50, (0, 0, 30, 30), [[5, 5], [25, 5], [15, 15], [7, 25], [23, 25]]),
}
MAFL_TRAIN = ["000001.jpg", "000002.jpg", "000003.jpg"]
MAFL_TEST = ["000004.jpg"]


def _pixels(h, w, seed):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture
def celeba_root(tmp_path):
    (tmp_path / "img_celeba").mkdir()
    (tmp_path / "Anno").mkdir()
    (tmp_path / "MAFL").mkdir()
    lm_lines = [str(len(FACES)), "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y "
                                 "leftmouth_x leftmouth_y rightmouth_x rightmouth_y"]
    box_lines = [str(len(FACES)), "image_id x_1 y_1 width height"]
    for i, (name, (h, w, box, lm)) in enumerate(FACES.items()):
        # PNG content under the CelebA name: lossless, so pixels can be checked exactly
        Image.fromarray(_pixels(h, w, i)).save(tmp_path / "img_celeba" / name, format="PNG")
        lm_lines.append(name + "  " + " ".join(str(v) for p in lm for v in p))
        box_lines.append(name + " " + " ".join(map(str, box)))
    (tmp_path / "Anno" / "list_landmarks_celeba.txt").write_text("\n".join(lm_lines) + "\n")
    (tmp_path / "Anno" / "list_bbox_celeba.txt").write_text("\n".join(box_lines) + "\n")
    (tmp_path / "MAFL" / "training.txt").write_text("\n".join(MAFL_TRAIN) + "\n")
    (tmp_path / "MAFL" / "testing.txt").write_text("\n".join(MAFL_TEST) + "\n")
    return tmp_path


def test_celeba_splits_and_face_filter(celeba_root):
    train = CelebA(celeba_root, "train")
    assert train.names == ["000001.jpg", "000003.jpg", "000005.jpg"]  # no MAFL test, no small face
    assert CelebA(celeba_root, "mafl_train").names == ["000001.jpg", "000003.jpg"]
    assert CelebA(celeba_root, "test").names == ["000004.jpg"]
    assert build_dataset("celeba", "mafl_test", root=celeba_root).names == ["000004.jpg"]
    assert len(CelebA(celeba_root, "train", length=2)) == 2
    assert (celeba_root / "Anno" / "tusk_image_sizes.txt").is_file()  # header sizes cached
    assert CelebA(celeba_root, "train").names == train.names  # and reused


def test_celeba_item_resizes_image_and_landmarks(celeba_root):
    ds = CelebA(celeba_root, "train", image_size=(20, 25))
    item = ds[0]  # 000001: 40x50 -> 20x25, exactly 2x2 averaging
    assert item["image"].shape == (3, 20, 25) and item["landmarks"].shape == (5, 2)
    src = _pixels(40, 50, 0).astype(np.float64) / 255
    expected = src.reshape(20, 2, 25, 2, 3).mean((1, 3)).transpose(2, 0, 1)
    np.testing.assert_allclose(item["image"].numpy(), expected, atol=1e-6)
    lm = np.array(FACES["000001.jpg"][3], np.float64)
    np.testing.assert_allclose(item["landmarks"].numpy(), (lm + 0.5) / 2 - 0.5)
    batch = collate([ds[0], ds[1]])
    assert batch["landmarks"].shape == (2, 5, 2) and batch["name"] == ["000001.jpg", "000003.jpg"]


def test_celeba_missing_and_malformed_files(celeba_root):
    lm = celeba_root / "Anno" / "list_landmarks_celeba.txt"
    lines = lm.read_text().splitlines()
    lm.write_text("\n".join(lines[:4] + ["000003.jpg 1 2 3"] + lines[5:]) + "\n")
    with pytest.raises(DataFileError, match=r"list_landmarks_celeba.txt: line 5"):
        CelebA(celeba_root)
    lm.write_text("\n".join(lines) + "\n")
    (celeba_root / "img_celeba" / "000005.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (celeba_root / "Anno" / "tusk_image_sizes.txt").unlink(missing_ok=True)
    with pytest.raises(DataFileError, match="000005.jpg"):
        CelebA(celeba_root, "train")
    (celeba_root / "MAFL" / "testing.txt").unlink()
    with pytest.raises(FileNotFoundError, match="testing.txt"):
        CelebA(celeba_root, "test")
    with pytest.raises(ValueError, match="split"):
        CelebA(celeba_root, "validation")


# ---------------------------------------------------------------- Human3.6M

@pytest.fixture
def h36m_root(tmp_path):
    paths, poses = [], []
    rng = np.random.default_rng(0)
    for subject in ("S1", "S9", "S11", "S10"):
        folder = tmp_path / subject / "Walking 1"
        folder.mkdir(parents=True)
        for frame in range(2):
            rel = f"{subject}/Walking 1/{frame:06d}.png"
            Image.fromarray(_pixels(64, 64, len(paths))).save(tmp_path / rel)
            paths.append(rel)
            poses.append(rng.uniform(0, 63, size=(32, 2)))
    np.savez(tmp_path / "poses.npz", paths=np.array(paths), keypoints=np.array(poses, np.float32))
    return tmp_path


def test_h36m_subject_splits_and_items(h36m_root):
    train, test = H36M(h36m_root, "train", image_size=32), build_dataset("h36m", "test", root=h36m_root)
    assert [p.split("/")[0] for p in train.paths] == ["S1", "S1", "S9", "S9"]
    assert [p.split("/")[0] for p in test.paths] == ["S11", "S11"]
    item = train[2]
    assert item["image"].shape == (3, 32, 32) and item["landmarks"].shape == (32, 2)
    poses = np.load(h36m_root / "poses.npz")["keypoints"]
    np.testing.assert_allclose(item["landmarks"], (poses[2] + 0.5) / 2 - 0.5, rtol=1e-6)
    assert torch.equal(item["swap_pairs"], torch.from_numpy(H36M_SWAP_PAIRS))
    assert test[0]["image"].shape == (3, 128, 128)
    assert len(H36M(h36m_root, subjects=["S10"])) == 2


def test_h36m_errors(h36m_root):
    (h36m_root / "S1" / "Walking 1" / "000001.png").unlink()
    with pytest.raises(FileNotFoundError, match="000001.png"):
        H36M(h36m_root, "train")[1]
    with pytest.raises(ValueError, match="swap_pairs"):
        H36M(h36m_root, swap_pairs=[[0, 40]])
    np.savez(h36m_root / "poses.npz", paths=np.array(["S1/x.png"]))
    with pytest.raises(DataFileError, match="poses.npz.*keypoints"):
        H36M(h36m_root)
    (h36m_root / "poses.npz").write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(DataFileError, match="poses.npz"):
        H36M(h36m_root)
    with pytest.raises(FileNotFoundError, match="poses.npz"):
        H36M(h36m_root / "S1")


def test_prepare_command_reports_split_sizes(h36m_root, celeba_root, capsys):
    from tusk.data.cli import main

    assert main(["prepare", "h36m", "--root", str(h36m_root)]) == 0
    assert main(["prepare", "celeba", "--root", str(celeba_root)]) == 0
    out = capsys.readouterr().out
    assert "h36m train: 4 images" in out and "h36m test: 2 images" in out
    assert "celeba mafl_train: 2 images" in out
