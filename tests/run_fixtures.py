"""A tiny training run (a fraction of a second on one thread) shared by the run-directory tests."""
import pytest
import torch
import yaml

from tusk.cli import main

TINY_RUN = {
    "name": "tiny",
    "data": {"dataset": "squares", "image_size": 16, "train_length": 32, "test_length": 8},
    "model": {"channels": 8, "keypoints": 2, "prototypes": 4, "window": 5, "width": 4, "levels": 2},
    "train": {"steps": 2, "batch_size": 2, "sw_steps": 1, "log_every": 1, "image_every": 0,
              "checkpoint_every": 0, "eval_images": 4},
}


def write_tiny_config(directory, **sections) -> str:
    """``TINY_RUN`` (sections updated from ``sections``) as ``directory/tiny.yaml``; returns its path."""
    values = {key: dict(value) if isinstance(value, dict) else value for key, value in TINY_RUN.items()}
    for section, update in sections.items():
        values[section] = {**values.get(section, {}), **update}
    path = directory / "tiny.yaml"
    path.write_text(yaml.safe_dump(values))
    return str(path)


def train_tiny(directory, run_name: str = "run", *extra: str) -> str:
    """Train the tiny config into ``directory/run_name`` with ``tusk train`` on the reference ops
    and one thread (module-scoped fixtures run before the tests' own settings); returns the run
    directory."""
    run = directory / run_name
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: see test_train.py
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("TUSK_BACKEND", "reference")
            argv = ["train", "--config", write_tiny_config(directory), "--out", str(run), "--quiet", *extra]
            assert main(argv) == 0
    finally:
        torch.set_num_threads(threads)
    return str(run)


def cli_error(capsys, argv) -> tuple[int, str]:
    """Exit status and stderr of ``tusk ARGV``."""
    status = main(argv)
    return status, capsys.readouterr().err


def assert_one_line_error(status: int, err: str, *fragments: str) -> None:
    """A clean user error: status 2, one ``tusk: error:`` line holding every fragment, no traceback."""
    assert status == 2, err
    assert err.startswith("tusk: error:") and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
