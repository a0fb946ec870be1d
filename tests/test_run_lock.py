"""One trainer per run directory: ``tusk train`` holds an OS lock on the run while it trains;
a second trainer (new run or ``--resume``) is refused, and a killed holder releases it."""
import json
import os
import signal
import subprocess
import sys

import pytest
import torch

from run_fixtures import assert_one_line_error, cli_error, train_tiny, write_tiny_config
from tusk.training import Trainer
from tusk.training.checkpoint import checkpoint_path
from tusk.training.run_lock import LOCK_FILENAME, RunLockError, hold_run_lock

# The helper processes load run_lock.py on its own (it needs nothing but the standard library),
# so they start in ~50 ms instead of the ~3 s of importing torch.
_LOAD = """
import importlib.util, sys, time
spec = importlib.util.spec_from_file_location("run_lock", {source!r})
run_lock = importlib.util.module_from_spec(spec)
spec.loader.exec_module(run_lock)
"""
_HOLDER = _LOAD + """
with run_lock.hold_run_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(600)
"""
_PROBE = _LOAD + """
try:
    with run_lock.hold_run_lock(sys.argv[1]):
        print("free")
except run_lock.RunLockError as err:
    print("busy:", err)
"""


def _source() -> str:
    import tusk.training.run_lock

    return os.path.abspath(tusk.training.run_lock.__file__)


@pytest.fixture(autouse=True)
def _setup(monkeypatch):
    monkeypatch.setenv("TUSK_BACKEND", "reference")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: see test_train.py
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def holder():
    """Start a process holding the lock of a directory; yields ``start(run_dir) -> Popen``."""
    processes = []

    def start(run_dir):
        process = subprocess.Popen([sys.executable, "-c", _HOLDER.format(source=_source()), str(run_dir)],
                                   stdout=subprocess.PIPE, text=True)
        processes.append(process)
        assert process.stdout.readline().strip() == "locked"
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        process.stdout.close()


def probe(run_dir) -> str:
    """``free`` or ``busy: <message>``, as seen by another process trying to lock ``run_dir``."""
    result = subprocess.run([sys.executable, "-c", _PROBE.format(source=_source()), str(run_dir)],
                            capture_output=True, text=True, timeout=60, check=True)
    return result.stdout.strip()


def test_a_second_trainer_is_refused_while_the_run_is_held(tmp_path, capsys, holder):
    run = train_tiny(tmp_path)
    before = open(checkpoint_path(run), "rb").read()
    owner = holder(run)
    status, err = cli_error(capsys, ["train", "--resume", "--out", run, "--steps", "4", "--quiet"])
    assert_one_line_error(status, err, run, "in use by another trainer", f"pid {owner.pid}")
    status, err = cli_error(capsys, ["train", "--config", write_tiny_config(tmp_path), "--out", run, "--quiet"])
    assert_one_line_error(status, err, "in use by another trainer")
    fresh = tmp_path / "fresh"
    holder(fresh)
    status, err = cli_error(capsys, ["train", "--config", write_tiny_config(tmp_path), "--out", str(fresh), "--quiet"])
    assert_one_line_error(status, err, "in use by another trainer")
    assert sorted(os.listdir(fresh)) == [LOCK_FILENAME]
    assert open(checkpoint_path(run), "rb").read() == before  # untouched

    owner.send_signal(signal.SIGKILL)  # the OS releases the lock of a killed process
    owner.wait(timeout=30)
    assert main_resumes(run, capsys)


def main_resumes(run, capsys) -> bool:
    status, err = cli_error(capsys, ["train", "--resume", "--out", run, "--steps", "3", "--quiet"])
    assert status == 0, err
    return json.load(open(os.path.join(run, "metrics.json")))["step"] == 3


def test_training_holds_the_lock_until_it_ends(tmp_path, monkeypatch):
    from run_fixtures import TINY_RUN
    from tusk.config import config_from_dict

    seen = []
    step = Trainer.train_step

    def probing_step(self, *args):
        seen.append(probe(self.run_dir))
        return step(self, *args)

    monkeypatch.setattr(Trainer, "train_step", probing_step)
    run = tmp_path / "run"
    Trainer(config_from_dict(TINY_RUN), run, progress=False).run()
    assert len(seen) == 2 and all(s.startswith("busy:") and "in use by another trainer" in s for s in seen), seen
    assert f"pid {os.getpid()}" in seen[0]
    assert probe(run) == "free"


def test_a_trainer_refuses_a_run_changed_by_another_since_it_loaded(tmp_path):
    """Between ``Trainer(...)`` and ``run()`` the lock is not held: another trainer may have
    advanced the run meanwhile; continuing from the stale state would mix the two."""
    run = train_tiny(tmp_path)
    first = Trainer(None, run, resume=True, progress=False)
    other = Trainer(None, run, resume=True, progress=False)
    other.config.train.steps = 3
    other.run()
    first.config.train.steps = 4
    with pytest.raises(RunLockError, match="changed since this trainer"):
        first.run()


def test_lock_is_reentrant_in_one_process_and_tidies_a_directory_it_created(tmp_path):
    run = tmp_path / "new" / "run"
    with hold_run_lock(run) as lock_file:
        assert os.path.basename(lock_file) == LOCK_FILENAME
        record = json.load(open(lock_file))
        assert record["pid"] == os.getpid() and record["host"] and record["started"]
        with hold_run_lock(str(run) + "/"):  # the same directory, spelt differently
            assert probe(run).startswith("busy:")
        assert probe(run).startswith("busy:")
    assert probe(run) == "free"
    assert not run.exists()  # created by the lock and left empty: removed again
    run.mkdir()
    (run / "notes.txt").write_text("kept")
    with hold_run_lock(run):
        pass
    assert sorted(os.listdir(run)) == ["notes.txt", LOCK_FILENAME]
    with hold_run_lock(run, enabled=False):  # a distributed run's non-writing process
        assert probe(run) == "free"


def test_a_file_in_place_of_the_run_directory(tmp_path, capsys):
    target = tmp_path / "not-a-dir"
    target.write_text("")
    status, err = cli_error(capsys, ["train", "--config", write_tiny_config(tmp_path), "--out", str(target)])
    assert_one_line_error(status, err, str(target), "not a directory")
