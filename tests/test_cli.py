"""The ``tusk`` command line: train, resume, eval, detect and clean errors for user mistakes."""
import json

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from tusk.cli import main
from tusk.training.squares import Squares

TINY = {
    "name": "tiny",
    "data": {"dataset": "squares", "image_size": 16, "train_length": 32, "test_length": 8},
    "model": {"channels": 8, "keypoints": 2, "prototypes": 4, "window": 5, "width": 4, "levels": 2},
    "train": {"steps": 2, "batch_size": 2, "sw_steps": 1, "log_every": 1, "image_every": 0,
              "checkpoint_every": 0, "eval_images": 4},
}


@pytest.fixture(autouse=True)
def _setup(monkeypatch):
    # Independent of which C++ kernels are built; the model tests cover the backends.
    monkeypatch.setenv("TUSK_BACKEND", "reference")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: see test_train.py
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


@pytest.fixture
def trained(tmp_path, config_file):
    run = tmp_path / "run"
    assert main(["train", "--config", str(config_file), "--out", str(run), "--quiet"]) == 0
    return run


def error_of(capsys, argv) -> tuple[int, str]:
    status = main(argv)
    err = capsys.readouterr().err
    return status, err


def test_train_and_resume(trained, capsys):
    assert (trained / "checkpoint.pt").is_file() and (trained / "detections.png").is_file()
    metrics = json.loads((trained / "metrics.json").read_text())
    assert metrics["step"] == 2
    assert main(["train", "--resume", "--out", str(trained), "--steps", "3", "--quiet"]) == 0
    assert json.loads((trained / "metrics.json").read_text())["step"] == 3
    out = capsys.readouterr().out
    assert "run directory" in out and '"step": 3' in out


def test_train_refuses_to_overwrite(trained, config_file, capsys):
    status, err = error_of(capsys, ["train", "--config", str(config_file), "--out", str(trained)])
    assert status == 2 and "already holds a run" in err and "Traceback" not in err


def test_eval(trained, capsys):
    assert main(["eval", str(trained)]) == 0
    metrics = json.loads((trained / "eval.json").read_text())
    assert metrics["images"] == 8 and metrics["dataset"] == "squares"
    assert "keypoint_to_object_px" in metrics
    assert "metrics written" in capsys.readouterr().out


def test_detect(trained, tmp_path, capsys):
    paths = []
    for i, size in enumerate([(16, 16), (40, 30)]):
        image = Squares(1, image_size=16, seed=i)[0]["image"]
        array = (image.permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        path = tmp_path / f"picture{i}.png"
        Image.fromarray(array).resize(size[::-1]).save(path)
        paths.append(str(path))
    out = tmp_path / "detections"
    assert main(["detect", str(trained), *paths, "--out", str(out)]) == 0
    results = json.loads((out / "detections.json").read_text())
    assert [r["image"] for r in results] == paths
    assert results[1]["size"] == [40, 30]
    for result in results:
        height, width = result["size"]
        assert len(result["keypoints"]) == 2
        for kp in result["keypoints"]:
            assert -0.5 <= kp["x"] <= width - 0.5 and -0.5 <= kp["y"] <= height - 0.5
            assert 0 <= kp["prototype"] < 4 and isinstance(kp["valid"], bool)
    assert (out / "picture0.png").is_file() and (out / "picture1.png").is_file()


@pytest.mark.parametrize("argv, message", [
    (["train", "--config", "no-such-config"], "no config file or packaged config named 'no-such-config'"),
    (["train", "--resume"], "--resume needs --out"),
    (["train", "--resume", "--out", "{tmp}/nothing"], "no checkpoint in"),
    (["train", "--config", "squares", "--steps", "0"], "--steps must be >= 1"),
    (["train", "--config", "squares", "--device", "tpu"], "--device must be cpu, cuda or cuda:N"),
    (["train", "--config", "squares", "--data-dir", "{tmp}/absent"], "does not exist"),
    (["eval", "{tmp}/nothing"], "is not a run directory"),
    (["eval", "{tmp}"], "no checkpoint at"),
    (["detect", "{tmp}", "x.png", "--out", "{tmp}/o"], "no checkpoint at"),
])
def test_user_errors_are_one_line(tmp_path, capsys, argv, message):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    status, err = error_of(capsys, argv)
    assert status == 2
    assert message in err and err.startswith("tusk: error:") and "Traceback" not in err


def test_bad_config_files(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {keypoints: 3, wrong_key: 1}\n")
    status, err = error_of(capsys, ["train", "--config", str(bad), "--out", str(tmp_path / "r")])
    assert status == 2 and "unknown config key(s) model.wrong_key" in err
    bad.write_text("model: [unclosed\n")
    status, err = error_of(capsys, ["train", "--config", str(bad)])
    assert status == 2 and "invalid YAML" in err
    bad.write_text("train: {steps: many}\n")
    status, err = error_of(capsys, ["train", "--config", str(bad)])
    assert status == 2 and "train.steps must be int" in err


def test_corrupt_checkpoint_and_bad_image(trained, tmp_path, capsys):
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image")
    status, err = error_of(capsys, ["detect", str(trained), str(junk), "--out", str(tmp_path / "o")])
    assert status == 2 and "not a readable image" in err
    status, err = error_of(capsys, ["detect", str(trained), str(tmp_path / "none.png"), "--out", str(tmp_path / "o")])
    assert status == 2 and "image not found" in err
    (trained / "checkpoint.pt").write_bytes(b"truncated")
    status, err = error_of(capsys, ["eval", str(trained)])
    assert status == 2 and "not a readable checkpoint" in err and "Traceback" not in err
    status, err = error_of(capsys, ["train", "--resume", "--out", str(trained)])
    assert status == 2 and "not a readable checkpoint" in err


def test_info(capsys):
    assert main(["info"]) == 0
    assert "backends:" in capsys.readouterr().out


def test_eval_with_task_metrics(tmp_path, capsys):
    """On a paper dataset, eval adds tusk.eval's task metrics and figures (object discovery)."""
    config = {
        "name": "tet",
        "data": {"dataset": "tetrominoes", "train_length": 8, "test_length": 8},
        "model": {"channels": 8, "keypoints": 3, "prototypes": 6, "window": 9, "width": 4, "levels": 2,
                  "alpha_blending": True},
        "train": {"steps": 1, "batch_size": 2, "sw_steps": 1, "image_every": 0, "checkpoint_every": 0,
                  "eval_images": 4},
    }
    path = tmp_path / "tet.yaml"
    path.write_text(yaml.safe_dump(config))
    run = tmp_path / "run"
    assert main(["train", "--config", str(path), "--out", str(run), "--quiet"]) == 0
    assert main(["eval", str(run), "--images", "6"]) == 0
    metrics = json.loads((run / "eval.json").read_text())
    assert metrics["images"] == 6 and 0 <= metrics["task"]["ari"] <= 1
    assert (run / "eval" / "detections.png").is_file() and (run / "eval" / "metrics.json").is_file()
