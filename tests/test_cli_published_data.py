"""``tusk train / eval / data prepare`` on the published MNIST-Hard layout (MIST directory)."""
import json

import pytest
import torch
import yaml

from data_fixtures import write_mist_dir
from tusk.cli import main

TINY_MNIST_HARD = {  # the packaged mnist_hard task with a model small enough for a test
    "name": "tiny_mnist_hard",
    "data": {"dataset": "mnist_hard", "image_size": 80},
    "model": {"channels": 8, "keypoints": 9, "prototypes": 10, "window": 5, "width": 4, "levels": 2},
    "train": {"steps": 2, "batch_size": 2, "sw_steps": 1, "log_every": 1, "image_every": 0,
              "checkpoint_every": 0, "eval_images": 4, "device": "auto"},
}


@pytest.fixture(autouse=True)
def _setup(monkeypatch):
    monkeypatch.setenv("TUSK_BACKEND", "reference")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def mist_dir(tmp_path):
    return write_mist_dir(tmp_path / "mnist_hard", {"train": 6, "test": 5})


def test_train_and_eval_on_the_published_layout(tmp_path, mist_dir, capsys):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY_MNIST_HARD))
    run = tmp_path / "run"
    assert main(["train", "--config", str(config), "--data-dir", str(mist_dir), "--steps", "2",
                 "--out", str(run)]) == 0
    err = capsys.readouterr().err
    assert f"data source: published MNIST-Hard files (MIST release) in {mist_dir}" in err
    if not torch.cuda.is_available():
        assert "device auto: no CUDA GPU visible, running on the CPU" in err
    assert (run / "config.yaml").read_text().startswith("# data source: published MNIST-Hard files")
    source = json.loads((run / "metrics.json").read_text())["data_source"]
    assert source["kind"] == "published" and source["benchmark"] and source["root"] == str(mist_dir)

    assert main(["eval", str(run), "--quiet"]) == 0
    out = capsys.readouterr().out
    metrics = json.loads((run / "eval.json").read_text())
    # the whole test split by default: 5 images of 9 digits
    assert metrics["images"] == 5 and metrics["test_split_images"] == 5 and metrics["objects"] == 45
    assert metrics["task"]["num_objects"] == 45
    for key in ("detection_accuracy", "both", "detection_accuracy_official", "both_official"):
        assert 0 <= metrics["task"][key] <= 1
    assert "scored 5 of 5 test images and 45 objects" in out
    assert main(["eval", str(run), "--images", "2", "--quiet", "--device", "cpu"]) == 0
    assert json.loads((run / "eval.json").read_text())["objects"] == 18


def test_generated_scenes_say_so(tmp_path, capsys):
    from data_fixtures import synthetic_digits
    import numpy as np

    digits = tmp_path / "digits.npz"
    np.savez(digits, images=synthetic_digits()[0], labels=synthetic_digits()[1])
    config = dict(TINY_MNIST_HARD, data={"dataset": "mnist_hard", "root": str(digits), "train_length": 8,
                                         "test_length": 4})
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    run = tmp_path / "run"
    assert main(["train", "--config", str(path), "--out", str(run), "--device", "cpu"]) == 0
    assert "not the paper's benchmark" in capsys.readouterr().err
    assert main(["train", "--config", str(path), "--out", str(tmp_path / "quiet"), "--quiet"]) == 0
    assert capsys.readouterr().err == ""  # --quiet: the source is in config.yaml and metrics.json only
    header = (run / "config.yaml").read_text().splitlines()[0]
    assert header.startswith("# data source: generated MNIST-Hard scenes") and str(digits) in header
    assert json.loads((run / "metrics.json").read_text())["data_source"]["kind"] == "generated"


def test_data_prepare_checks_the_directory(mist_dir, capsys):
    assert main(["data", "prepare", "mnist_hard", "--root", str(mist_dir)]) == 0
    out = capsys.readouterr().out
    assert "mnist_hard train: 6 images, 54 digits (9 per image), stored 80x80" in out
    assert "mnist_hard test: 5 images, 45 digits" in out
    png = mist_dir / "images" / "test_00004.png"
    png.write_bytes(png.read_bytes()[:50])
    assert main(["data", "prepare", "mnist_hard", "--root", str(mist_dir)]) == 2
    last = capsys.readouterr().err.splitlines()[-1]  # after the progress bar
    assert last.startswith("tusk: error:") and "test_00004.png: cannot decode image" in last
    (mist_dir / "train_labels.txt").write_text("1,2,3,4,5,6,7,8,9\n")
    assert main(["data", "prepare", "mnist_hard", "--root", str(mist_dir)]) == 2
    assert "train_labels.txt: 1 lines but the image list has 6" in capsys.readouterr().err
