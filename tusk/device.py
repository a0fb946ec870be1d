"""``device: auto``: the CUDA GPU when one is visible, else the CPU, saying so once."""
from __future__ import annotations

import sys

import torch

AUTO = "auto"


def resolve_device(name: str | torch.device | None, *, announce: bool = True) -> torch.device:
    """``"auto"`` (or None) -> ``cuda`` when available, else ``cpu`` with one line on stderr
    (unless ``announce`` is False: ``--quiet``); anything else -> ``torch.device(name)``.

    Raises:
        ValueError: a name torch does not parse.
    """
    if name is None or str(name) == AUTO:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if announce:
            print("tusk: device auto: no CUDA GPU visible, running on the CPU", file=sys.stderr)
        return torch.device("cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {name!r}") from None
