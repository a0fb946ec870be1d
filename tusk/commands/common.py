"""What the subcommands share: user-facing errors and device parsing."""
from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable

import torch

from ..config import ConfigError
from ..training.check_ops import OpCheckError
from ..training.checkpoint import CheckpointError
from ..training.run_lock import RunLockError


class UserError(Exception):
    """A problem with the user's input (bad flag value, missing file); printed without traceback."""


def user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions reported as one clean line: bad configs, checkpoints, files and data."""
    errors: list[type[BaseException]] = [UserError, ConfigError, CheckpointError, RunLockError, OpCheckError,
                                         FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError]
    try:
        from ..data.errors import DataFileError
    except ImportError:
        pass
    else:
        errors.append(DataFileError)
    return tuple(errors)


def report(err: BaseException) -> int:
    """Print ``tusk: error: ...`` for a user error; return the exit status."""
    message = str(err)
    if isinstance(err, OSError) and err.filename and err.strerror and str(err.filename) not in message:
        message = f"{err.strerror}: {err.filename}"
    print(f"tusk: error: {message}", file=sys.stderr)
    return 1 if isinstance(err, OpCheckError) else 2


def reporting_errors(body: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Wrap a subcommand: a user error becomes one ``tusk: error: ...`` line and an exit status
    (:func:`report`) instead of a traceback."""

    @functools.wraps(body)
    def run(args: argparse.Namespace) -> int:
        try:
            return body(args)
        except user_errors() as err:
            return report(err)

    return run


def parse_device(name: str | None, default: str = "cpu") -> str:
    """Validate ``--device`` (``cpu``, ``cuda``, ``cuda:N``)."""
    name = name or default
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device must be cpu, cuda or cuda:N, got {name!r}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"--device {name}: no CUDA GPU is visible to this torch build")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserError(f"--device {name}: only {torch.cuda.device_count()} GPU(s) visible")
    elif device.type != "cpu":
        raise UserError(f"--device must be cpu, cuda or cuda:N, got {name!r}")
    return str(device)
