"""Run checkpoints: everything needed to continue a run exactly, written atomically.

``RUN_DIR/checkpoint.pt`` holds the model and prototypes, both optimisers, the number of
completed steps, the config, the image size seen in training and the global RNG states. It is
written to a temporary file in the same directory and moved over the old one with
``os.replace``, so a crash mid-write never leaves a truncated checkpoint.
"""
from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch

FORMAT = "tusk-checkpoint"
VERSION = 1
FILENAME = "checkpoint.pt"


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable or not a tusk checkpoint."""


def checkpoint_path(run_dir: str | os.PathLike) -> str:
    return os.path.join(os.fspath(run_dir), FILENAME)


def rng_states() -> dict[str, Any]:
    """The global torch, numpy and Python RNG states as tensors and plain lists, so the
    checkpoint loads with ``torch.load(weights_only=True)`` (no arbitrary unpickling)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": {"version": version, "internal": list(internal), "gauss": gauss},
    }


def restore_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    n = states["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    p = states["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))


def save_checkpoint(path: str | os.PathLike, **payload: Any) -> None:
    """Write ``payload`` (plus format tags and RNG states) to ``path`` atomically."""
    path = os.fspath(path)
    state = {"format": FORMAT, "version": VERSION, "rng": rng_states(), **payload}
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read and sanity-check a checkpoint.

    Raises:
        CheckpointError: the file is missing, corrupt or not a tusk checkpoint (never a raw
            unpickling traceback).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # truncated zip, foreign pickle, ...
        # The full message of a weights-only unpickling failure is a page long; its type says enough.
        raise CheckpointError(f"{path}: not a readable checkpoint (damaged, truncated or not written by "
                              f"tusk; {type(err).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a tusk checkpoint")
    if state.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {state.get('version')} is not supported "
                              f"(this tusk reads version {VERSION})")
    missing = [k for k in ("model", "optimizer", "prototype_optimizer", "step", "config") if k not in state]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {', '.join(missing)}")
    return state
