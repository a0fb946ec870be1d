"""``--data-dir``: where a run's dataset lives, checked before anything is built."""
from __future__ import annotations

import os

from .common import UserError

#: Datasets whose data may be one file instead of a directory, and what that file is.
FILE_DATASETS = {
    "mnist_hard": "an npz of digits (images [N, 28, 28] uint8, labels [N])",
    "clevr6": "the TFRecords file",
    "tetrominoes": "the TFRecords file",
}


def check_data_dir(path: str, dataset: str) -> str:
    """Return ``path`` if ``dataset`` can read it: an existing directory, or a file for the
    datasets of :data:`FILE_DATASETS`; the readers check the contents.

    Raises:
        UserError: the path does not exist, or is a file where the dataset reads a directory.
    """
    if not os.path.exists(path):
        raise UserError(f"--data-dir {path} does not exist")
    if not os.path.isdir(path) and dataset not in FILE_DATASETS:
        readers = ", ".join(f"{name} ({what})" for name, what in FILE_DATASETS.items())
        raise UserError(f"--data-dir {path} is a file; dataset {dataset} reads a directory (a file is "
                        f"accepted by {readers})")
    return path
