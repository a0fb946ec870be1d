"""``tusk train --set KEY=VALUE`` (dotted keys, YAML-typed values, validated like the file) and
``--data-dir`` given an npz of digits for ``mnist_hard``."""
import numpy as np
import pytest
import torch
import yaml

from data_fixtures import synthetic_digits
from run_fixtures import assert_one_line_error, cli_error, train_tiny, write_tiny_config
from tusk.cli import main
from tusk.config import ConfigError, load_config
from tusk.config_overrides import RESUMABLE_KEYS, apply_overrides, parse_override


@pytest.fixture(autouse=True)
def _setup(monkeypatch):
    monkeypatch.setenv("TUSK_BACKEND", "reference")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: see test_train.py
    yield
    torch.set_num_threads(threads)


def test_parse_override():
    assert parse_override("train.batch_size=16") == ("train.batch_size", 16)
    assert parse_override(" train.lr = 1e-3 ") == ("train.lr", "1e-3")  # typed by the config
    assert parse_override("train.prototype_betas=[0.4, 0.9]") == ("train.prototype_betas", [0.4, 0.9])
    assert parse_override("model.threshold=null") == ("model.threshold", None)
    assert parse_override("name=a=b") == ("name", "a=b")
    for bad, message in [("train.steps", "KEY=VALUE"), ("=3", "KEY=VALUE"), ("train..steps=3", "KEY=VALUE"),
                         ("model.width=[1,", "invalid YAML")]:
        with pytest.raises(ConfigError, match=message):
            parse_override(bad)


def test_overrides_change_the_loaded_config():
    config = load_config("squares", overrides=[
        "train.batch_size=16", "model.width=16", "train.lr=1e-3", "train.prototype_betas=[0.4, 0.9]",
        "loss.augment=null", "loss.tps.scale=0.8", "name=exp", "model.threshold=0.5"])
    assert (config.train.batch_size, config.model.width, config.train.lr) == (16, 16, 1e-3)
    assert config.train.prototype_betas == (0.4, 0.9) and config.loss.augment is None
    assert config.loss.tps.scale == 0.8 and config.name == "exp" and config.model.threshold == 0.5
    assert config.model.keypoints == load_config("squares").model.keypoints  # the rest is the file's
    # A section left out of the file (or null) is created by a dotted key.
    assert load_config("squares", overrides=["loss.augment=null", "loss.augment.rot_scale=0.3"]).loss.augment.rot_scale == 0.3


@pytest.mark.parametrize("override, message", [
    ("train.bogus=1", "--set train.bogus=1: unknown config key train.bogus; known in train: backend, batch_size"),
    ("bogus.steps=1", "--set bogus.steps=1: unknown config key bogus; known: data, loss, model, name, train"),
    ("train.steps.x=1", "--set train.steps.x=1: train.steps is a value, not a section"),
    ("train.lr=nan", "--set train.lr=nan: train.lr must be a finite number > 0, got nan"),
    ("train.lr=fast", "--set train.lr=fast: train.lr must be float, got 'fast'"),
    ("train.batch_size=0", "--set train.batch_size=0: train.batch_size must be >= 1, got 0"),
    ("data.dataset=mnist", "--set data.dataset=mnist: data.dataset must be one of"),
    ("model=3", "--set model=3: model must be a mapping, got int"),
])
def test_bad_overrides_name_the_override(override, message):
    with pytest.raises(ConfigError) as caught:
        load_config("squares", overrides=[override])
    assert str(caught.value).startswith(message), str(caught.value)


def test_a_bad_value_in_the_file_still_names_the_file(tmp_path):
    path = write_tiny_config(tmp_path, train={"lr": -1.0})
    with pytest.raises(ConfigError, match=f"^{path}: train.lr must be"):
        load_config(path, overrides=["train.steps=3"])
    assert load_config(path, overrides=["train.lr=0.01"]).train.lr == 0.01  # fixed by the override


def test_apply_overrides_leaves_its_input_alone():
    values = {"train": {"steps": 3}}
    assert apply_overrides(values, ["train.steps=5", "model.width=8"]) == {"train": {"steps": 5}, "model": {"width": 8}}
    assert values == {"train": {"steps": 3}}


def test_train_with_overrides_records_them_in_the_run(tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train", "--config", write_tiny_config(tmp_path), "--out", str(run), "--quiet",
            "--set", "train.batch_size=3", "--set", "model.width=6", "--set", "train.steps=1"]
    assert main(argv) == 0
    stored = yaml.safe_load((run / "config.yaml").read_text())
    assert stored["train"]["batch_size"] == 3 and stored["model"]["width"] == 6 and stored["train"]["steps"] == 1
    # --steps (applied after --set) wins over --set train.steps.
    status, err = cli_error(capsys, ["train", "--config", write_tiny_config(tmp_path), "--out", str(tmp_path / "r2"),
                                     "--quiet", "--set", "train.steps=5", "--steps", "1"])
    assert status == 0, err
    assert yaml.safe_load((tmp_path / "r2" / "config.yaml").read_text())["train"]["steps"] == 1
    status, err = cli_error(capsys, ["train", "--config", write_tiny_config(tmp_path), "--set", "train.lr=.inf"])
    assert_one_line_error(status, err, "--set train.lr=.inf: train.lr must be a finite number > 0, got inf")


def test_resume_accepts_only_resumable_overrides(tmp_path, capsys):
    run = train_tiny(tmp_path)
    status, err = cli_error(capsys, ["train", "--resume", "--out", run, "--quiet", "--set", "train.steps=3",
                                     "--set", "train.log_every=2", "--set", "data.num_workers=0"])
    assert status == 0, err
    stored = yaml.safe_load(open(f"{run}/config.yaml"))
    assert stored["train"]["steps"] == 3 and stored["train"]["log_every"] == 2
    status, err = cli_error(capsys, ["train", "--resume", "--out", run, "--set", "model.width=16"])
    assert_one_line_error(status, err, "--set model.width=16: a resumed run keeps its config", "train.steps")
    status, err = cli_error(capsys, ["train", "--resume", "--out", run, "--set", "train.steps=0"])
    assert_one_line_error(status, err, "--set train.steps=0: train.steps must be >= 1")
    assert {"train.steps", "train.check_ops", "train.device", "data.root"} <= set(RESUMABLE_KEYS)


def test_data_dir_accepts_an_npz_of_digits_for_mnist_hard(tmp_path, capsys):
    images, labels = synthetic_digits(per_class=4)
    digits = tmp_path / "digits.npz"
    np.savez(digits, images=images, labels=labels)
    tiny = ["--set", "data.image_size=32", "--set", "data.train_length=8", "--set", "data.test_length=4",
            "--set", "model.width=4", "--set", "model.levels=2", "--set", "model.channels=8", "--set", "model.window=5",
            "--set", "train.batch_size=2", "--set", "train.sw_steps=1", "--set", "train.eval_images=4",
            "--set", "train.image_every=0", "--set", "train.checkpoint_every=0", "--set", "data.num_workers=0"]
    run = tmp_path / "run"
    status, err = cli_error(capsys, ["train", "--config", "mnist_hard", "--data-dir", str(digits), "--steps", "1",
                                     "--out", str(run), "--quiet", *tiny])
    assert status == 0, err
    assert yaml.safe_load((run / "config.yaml").read_text())["data"]["root"] == str(digits)
    assert main(["eval", str(run), "--data-dir", str(digits), "--images", "4"]) == 0
    # A file is refused for a dataset that reads a directory, and a missing path for any.
    status, err = cli_error(capsys, ["train", "--config", "celeba", "--data-dir", str(digits)])
    assert_one_line_error(status, err, f"--data-dir {digits} is a file; dataset celeba reads a directory")
    status, err = cli_error(capsys, ["train", "--config", "mnist_hard", "--data-dir", str(tmp_path / "absent.npz")])
    assert_one_line_error(status, err, "does not exist")


def test_resumable_bookkeeping_does_not_change_the_run(tmp_path):
    """A run resumed with other logging, picture, checkpoint and evaluation settings ends bit for
    bit where the uninterrupted run ends (the claim behind RESUMABLE_KEYS)."""
    from tusk.config import config_from_dict
    from tusk.training import Trainer

    from run_fixtures import TINY_RUN

    def config(steps, **train):
        return config_from_dict({**TINY_RUN, "train": {**TINY_RUN["train"], "steps": steps, **train}})

    whole = Trainer(config(4), tmp_path / "whole", progress=False)
    whole.run()
    Trainer(config(2), tmp_path / "split", progress=False).run()
    resumed = Trainer(config(4, log_every=3, image_every=1, checkpoint_every=1, eval_images=2, check_ops=1),
                      tmp_path / "split", resume=True, progress=False)
    resumed.run()
    for name, tensor in whole.model.state_dict().items():
        assert torch.equal(tensor, resumed.model.state_dict()[name]), name
    assert resumed.config.train.eval_images == 2 and resumed.config.train.image_every == 1
