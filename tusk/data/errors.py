"""Exceptions raised by the dataset readers.

Every error about a file names that file: a user with a 20 GB dataset should never have to
guess which of its pieces is missing or damaged.
"""
from __future__ import annotations

import os


class DataFileError(ValueError):
    """A dataset file exists but cannot be used (truncated, corrupt, wrong format).

    ``path`` holds the offending file.
    """

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ChecksumError(DataFileError):
    """A file's checksum differs from the published one (a damaged or wrong download)."""


def missing_file(path: str | os.PathLike, hint: str = "") -> FileNotFoundError:
    """A ``FileNotFoundError`` naming ``path`` (with an optional hint on how to get it)."""
    path = os.fspath(path)
    message = f"dataset file not found: {path}"
    if hint:
        message += f" ({hint})"
    return FileNotFoundError(2, message, path)
