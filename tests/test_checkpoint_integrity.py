"""Checkpoint integrity: damaged bytes are refused (CRC-32 of every archive member), hand-damaged
fields give one clear error naming the file and the field, and temporaries of a writer killed
mid-save are cleaned up."""
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import zipfile

import pytest
import torch

from run_fixtures import assert_one_line_error, cli_error, train_tiny
from tusk.training import Trainer
from tusk.training.checkpoint import CheckpointError, checkpoint_path, load_checkpoint, save_checkpoint


@pytest.fixture(autouse=True)
def _setup(monkeypatch):
    monkeypatch.setenv("TUSK_BACKEND", "reference")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: see test_train.py
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def pristine_run(tmp_path_factory):
    """One tiny trained run, copied by :func:`run_copy` for each test that damages it."""
    return train_tiny(tmp_path_factory.mktemp("pristine"))


@pytest.fixture
def run_copy(pristine_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(pristine_run, run)
    return run


def states_equal(a, b) -> bool:
    """Deep equality of checkpoint contents (tensors bit for bit, NaNs equal)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and \
            torch.equal(a.view(-1).view(torch.uint8) if a.numel() else a, b.view(-1).view(torch.uint8) if b.numel() else b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(states_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(states_equal(x, y) for x, y in zip(a, b))
    return a == b or (a != a and b != b)


def member_data_offsets(path) -> dict[str, tuple[int, int]]:
    """``{member: (offset of its data in the file, size)}`` of a zip archive."""
    offsets = {}
    with zipfile.ZipFile(path) as archive, open(path, "rb") as fh:
        for info in archive.infolist():
            fh.seek(info.header_offset + 26)
            name_length, extra_length = struct.unpack("<HH", fh.read(4))
            offsets[info.filename] = (info.header_offset + 30 + name_length + extra_length, info.file_size)
    return offsets


def flip_bit(path, position: int, bit: int = 4) -> None:
    with open(path, "r+b") as fh:
        fh.seek(position)
        byte = fh.read(1)[0]
        fh.seek(position)
        fh.write(bytes([byte ^ (1 << bit)]))


def test_a_bit_flip_in_any_member_is_refused_naming_file_and_member(run_copy, capsys):
    path = checkpoint_path(run_copy)
    original = open(path, "rb").read()
    for member, (offset, size) in member_data_offsets(path).items():
        if size == 0:
            continue
        flip_bit(path, offset + size // 2)
        with pytest.raises(CheckpointError) as caught:
            load_checkpoint(path)
        message = str(caught.value)
        assert path in message and member in message and "CRC" in message, message
        with open(path, "wb") as fh:
            fh.write(original)
    flip_bit(path, max(member_data_offsets(path).values(), key=lambda item: item[1])[0] + 7)
    for argv in (["eval", str(run_copy)], ["detect", str(run_copy), "x.png", "--out", str(run_copy / "d")],
                 ["train", "--resume", "--out", str(run_copy), "--quiet"]):
        status, err = cli_error(capsys, argv)
        assert_one_line_error(status, err, path, "damaged")


def test_no_bit_flip_anywhere_loads_different_content(run_copy):
    """Flips at random positions over the whole file (headers, directory, pickle, tensors): each
    is refused or is harmless (alignment padding), never silently different contents."""
    path = checkpoint_path(run_copy)
    original = open(path, "rb").read()
    reference = load_checkpoint(path)
    rng = random.Random(0)
    refused = 0
    for position in rng.sample(range(len(original)), 150):
        flip_bit(path, position, rng.randrange(8))
        try:
            state = load_checkpoint(path)
        except CheckpointError as err:
            assert path in str(err)
            refused += 1
        else:
            assert states_equal(state, reference), f"a flip at byte {position} loaded different contents"
        with open(path, "wb") as fh:
            fh.write(original)
    assert refused > 100  # most bytes are tensor data; the rest is padding the readers never use


def test_checkpoints_carry_crcs_whatever_the_torch_setting(tmp_path):
    """``torch.save`` can be told to skip CRCs (all zero); tusk's writer always computes them and
    its reader refuses an archive without them (it cannot be verified)."""
    from torch.utils.serialization import config

    path = tmp_path / "checkpoint.pt"
    with config.patch({"save.compute_crc32": False}):
        save_checkpoint(path, model={"w": torch.ones(3)}, optimizer={"state": {}, "param_groups": []},
                        prototype_optimizer={"state": {}, "param_groups": []}, step=0, config={})
        torch.save({"format": "tusk-checkpoint", "version": 1}, tmp_path / "unchecked.pt")
    assert load_checkpoint(path)["step"] == 0
    with pytest.raises(CheckpointError, match="without CRC-32 checksums"):
        load_checkpoint(tmp_path / "unchecked.pt")


def _rewrite(path, damage) -> None:
    """Apply ``damage`` to the checkpoint's contents and save it with valid CRCs."""
    state = torch.load(path, weights_only=True)
    damage(state)
    torch.save(state, path)


def _set(*keys_and_value):
    *keys, value = keys_and_value

    def damage(state):
        target = state
        for key in keys[:-1]:
            target = target[key]
        if value is DELETE:
            del target[keys[-1]]
        else:
            target[keys[-1]] = value(target[keys[-1]]) if callable(value) else value
    return damage


DELETE = object()

#: (field named in the error, damage); every one is read by eval, detect and resume.
DAMAGED_FIELDS = [
    ("step", _set("step", "3")),
    ("step", _set("step", -1)),
    ("step", _set("step", torch.tensor(2))),
    ("image_size", _set("image_size", [0, 16])),
    ("image_size", _set("image_size", "16")),
    ("image_size", _set("image_size", [16, 16, 3])),
    ("elapsed", _set("elapsed", float("nan"))),
    ("elapsed", _set("elapsed", "soon")),
    ("rng", _set("rng", DELETE)),
    ("rng", _set("rng", [1, 2])),
    ("rng.torch", _set("rng", "torch", torch.zeros(3, dtype=torch.uint8))),
    ("rng.torch", _set("rng", "torch", lambda t: t.float())),
    ("rng.numpy.keys", _set("rng", "numpy", "keys", torch.zeros(5, dtype=torch.int64))),
    ("rng.numpy.keys", _set("rng", "numpy", "keys", lambda t: t - 2**33)),
    ("rng.numpy.pos", _set("rng", "numpy", "pos", 625)),
    ("rng.numpy.kind", _set("rng", "numpy", "kind", "PCG64")),
    ("rng.python.internal", _set("rng", "python", "internal", [1, 2, 3])),
    ("rng.python.version", _set("rng", "python", "version", "3")),
    ("model", _set("model", [1, 2])),
    ("model", _set("model", {"encoder.weight": 3.0})),
    ("config", _set("config", "tiny")),
    ("optimizer", _set("optimizer", [])),
    ("optimizer.param_groups", _set("optimizer", "param_groups", {})),
    ("optimizer.param_groups[0].lr", _set("optimizer", "param_groups", 0, "lr", "fast")),
    ("optimizer.param_groups[0].betas", _set("optimizer", "param_groups", 0, "betas", (0.9,))),
    ("optimizer.param_groups[0].params", _set("optimizer", "param_groups", 0, "params", [0, "x"])),
    ("optimizer.state", _set("optimizer", "state", [])),
    ("prototype_optimizer.state[0].exp_avg", _set("prototype_optimizer", "state", 0, "exp_avg", "zeros")),
    ("prototype_optimizer.state[0].step", _set("prototype_optimizer", "state", 0, "step", torch.ones(2))),
]


@pytest.mark.parametrize("field, damage", DAMAGED_FIELDS, ids=[f"{f}-{i}" for i, (f, _) in enumerate(DAMAGED_FIELDS)])
def test_hand_damaged_fields_are_named(run_copy, capsys, field, damage):
    path = checkpoint_path(run_copy)
    _rewrite(path, damage)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    assert str(caught.value).startswith(f"{path}: {field}"), str(caught.value)
    status, err = cli_error(capsys, ["train", "--resume", "--out", str(run_copy), "--steps", "3", "--quiet"])
    assert_one_line_error(status, err, path, field)


@pytest.mark.parametrize("command", ["eval", "detect"])
def test_eval_and_detect_name_a_damaged_field(run_copy, capsys, command):
    path = checkpoint_path(run_copy)
    _rewrite(path, _set("image_size", [16, -4]))
    argv = [command, str(run_copy)] + (["x.png", "--out", str(run_copy / "d")] if command == "detect" else [])
    status, err = cli_error(capsys, argv)
    assert_one_line_error(status, err, path, "image_size")


@pytest.mark.parametrize("field, damage", [
    ("optimizer.state[0].exp_avg", _set("optimizer", "state", 0, "exp_avg", lambda t: t[:1])),
    ("prototype_optimizer.state[0].exp_avg_sq", _set("prototype_optimizer", "state", 0, "exp_avg_sq",
                                                    lambda t: t.t())),
    ("optimizer.state[0].exp_avg_sq", _set("optimizer", "state", 0, "exp_avg_sq", lambda t: t.reshape(-1))),
])
def test_optimizer_states_that_do_not_fit_the_model_are_named_on_resume(run_copy, capsys, field, damage):
    """Shapes only meet the parameters on resume: today Adam fails in its first step."""
    path = checkpoint_path(run_copy)
    _rewrite(path, damage)
    load_checkpoint(path)  # well-formed on its own
    status, err = cli_error(capsys, ["train", "--resume", "--out", str(run_copy), "--steps", "3", "--quiet"])
    assert_one_line_error(status, err, path, field)


# The writer loads checkpoint.py on its own (it needs torch and numpy, not the rest of tusk):
# half the start-up time of importing the package.
_STALLED_WRITER = """
import importlib.util, sys, time, torch
spec = importlib.util.spec_from_file_location("checkpoint", sys.argv[2])
checkpoint = importlib.util.module_from_spec(spec)
spec.loader.exec_module(checkpoint)

def stalled_save(obj, fh, *args, **kwargs):
    fh.write(b"PK\\x03\\x04 half a checkpoint")
    fh.flush()
    print("writing", flush=True)
    time.sleep(600)

torch.save = stalled_save
checkpoint.save_checkpoint(sys.argv[1], step=0)
"""


def test_temporaries_of_a_writer_killed_mid_save_are_removed(run_copy):
    path = checkpoint_path(run_copy)
    import tusk.training.checkpoint

    writer = subprocess.Popen([sys.executable, "-c", _STALLED_WRITER, path, tusk.training.checkpoint.__file__],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "writing"
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
        writer.stdout.close()
    stale = f"{path}.tmp-{writer.pid}"
    assert os.path.isfile(stale)  # SIGKILL runs no cleanup
    unrelated = run_copy / "checkpoint.pt.tmp-notes"
    unrelated.write_text("not a temporary of ours")
    trainer = Trainer(None, run_copy, resume=True, progress=False)
    trainer.config.train.steps = 3
    trainer.run()
    assert not os.path.exists(stale) and unrelated.is_file()
    assert load_checkpoint(path)["step"] == 3
