"""The fields of a checkpoint, checked one by one so a damaged one is named, not a traceback.

The CRC check of :func:`~tusk.training.checkpoint.load_checkpoint` catches damaged bytes; this
module catches well-formed archives holding wrong values (edited by hand, written by another
tool or an incompatible version): ``step`` as a string, an ``image_size`` of 0, an RNG state of
the wrong length, an optimiser state that is not a mapping. Each error reads
``<file>: <field> <what is wrong>``, with fields spelt as paths (``rng.numpy.keys``,
``optimizer.param_groups[0].lr``).

Shapes of optimiser moments only meet the model's parameters on resume:
:func:`check_optimizer_fits` checks them after ``load_state_dict``.
"""
from __future__ import annotations

import math
import numbers
from typing import Any

import torch

from .checkpoint import CheckpointError

#: Mersenne Twister sizes: numpy's key words, Python's state words (the 625th is the position).
MT_WORDS = 624


class FieldError(Exception):
    """``field`` of a checkpoint holds a bad value (``problem`` says how)."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"{field} {problem}")
        self.field = field


def check_fields(state: dict[str, Any], path: str) -> None:
    """Check every field of a loaded checkpoint.

    Raises:
        CheckpointError: ``<path>: <field> ...`` for the first malformed field.
    """
    try:
        _check_integer("step", state["step"], minimum=0)
        if state.get("elapsed") is not None:
            _check_number("elapsed", state["elapsed"], minimum=0.0)
        if state.get("image_size") is not None:
            _check_image_size(state["image_size"])
        if not isinstance(state["config"], dict):
            raise FieldError("config", f"must be a mapping, got {_describe(state['config'])}")
        _check_tensors("model", state["model"])
        for name in ("optimizer", "prototype_optimizer"):
            _check_optimizer(name, state[name])
        _check_rng(state.get("rng"))
    except FieldError as err:
        raise CheckpointError(f"{path}: {err}") from None


def check_optimizer_fits(optimizer: torch.optim.Optimizer, field: str, path: str) -> None:
    """After ``optimizer.load_state_dict``: every per-parameter state tensor but ``step`` has its
    parameter's shape (Adam would otherwise fail inside its first step).

    Raises:
        CheckpointError: ``<path>: <field>.state[i].<key> has shape ..., its parameter ...``.
    """
    index = 0
    for group in optimizer.param_groups:
        for param in group["params"]:
            for key, value in optimizer.state.get(param, {}).items():
                if key != "step" and isinstance(value, torch.Tensor) and value.shape != param.shape:
                    raise CheckpointError(f"{path}: {field}.state[{index}].{key} has shape {list(value.shape)}, "
                                          f"its parameter {list(param.shape)}")
            index += 1


# -- the checks -------------------------------------------------------------------------------

def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {str(value.dtype).replace('torch.', '')} tensor of shape {list(value.shape)}"
    text = repr(value)
    return text if len(text) <= 40 else f"a {type(value).__name__}"


def _is_integer(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_integer(field: str, value: Any, minimum: int, maximum: int | None = None) -> None:
    if not _is_integer(value) or value < minimum or (maximum is not None and value > maximum):
        bounds = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise FieldError(field, f"must be an integer {bounds}, got {_describe(value)}")


def _check_number(field: str, value: Any, minimum: float | None = None) -> None:
    if not _is_number(value) or not math.isfinite(value) or (minimum is not None and value < minimum):
        bound = "" if minimum is None else f" >= {minimum:g}"
        raise FieldError(field, f"must be a finite number{bound}, got {_describe(value)}")


def _check_image_size(value: Any) -> None:
    if not (isinstance(value, (list, tuple)) and len(value) == 2 and all(_is_integer(v) and v >= 1 for v in value)):
        raise FieldError("image_size", f"must be [height, width], two integers >= 1, got {_describe(value)}")


def _check_tensors(field: str, value: Any) -> None:
    if not isinstance(value, dict):
        raise FieldError(field, f"must be a mapping of tensors, got {_describe(value)}")
    for key, tensor in value.items():
        if not isinstance(key, str) or not isinstance(tensor, torch.Tensor):
            raise FieldError(field, f"must be a mapping of names to tensors, but {key!r} holds {_describe(tensor)}")


def _check_optimizer(field: str, value: Any) -> None:
    """An ``Optimizer.state_dict()``: ``{"state": {index: {key: tensor|number}}, "param_groups": [...]}``."""
    if not (isinstance(value, dict) and "state" in value and "param_groups" in value):
        raise FieldError(field, f"must be an optimizer state (a mapping with state and param_groups), "
                                f"got {_describe(value)}")
    groups = value["param_groups"]
    if not isinstance(groups, list):
        raise FieldError(f"{field}.param_groups", f"must be a list, got {_describe(groups)}")
    listed: set[int] = set()
    for g, group in enumerate(groups):
        where = f"{field}.param_groups[{g}]"
        if not isinstance(group, dict):
            raise FieldError(where, f"must be a mapping, got {_describe(group)}")
        params = group.get("params")
        if not (isinstance(params, list) and all(_is_integer(p) and p >= 0 for p in params)):
            raise FieldError(f"{where}.params", f"must be a list of parameter indices, got {_describe(params)}")
        listed.update(params)
        _check_hyperparameters(where, group)
    state = value["state"]
    if not isinstance(state, dict):
        raise FieldError(f"{field}.state", f"must be a mapping, got {_describe(state)}")
    for index, entry in state.items():
        if not _is_integer(index) or index not in listed:
            raise FieldError(f"{field}.state", f"has an entry for parameter {index!r}, which no param_group lists")
        where = f"{field}.state[{index}]"
        if not isinstance(entry, dict):
            raise FieldError(where, f"must be a mapping, got {_describe(entry)}")
        for key, item in entry.items():
            if key == "step":
                if not ((isinstance(item, torch.Tensor) and item.numel() == 1) or _is_number(item)):
                    raise FieldError(f"{where}.step", f"must be a number or a one-element tensor, got {_describe(item)}")
            elif not isinstance(item, torch.Tensor):
                raise FieldError(f"{where}.{key}", f"must be a tensor, got {_describe(item)}")


def _check_hyperparameters(where: str, group: dict[str, Any]) -> None:
    """The Adam settings a resumed run takes from the checkpoint (they replace the config's)."""
    lr = group.get("lr")
    if isinstance(lr, torch.Tensor) and lr.numel() == 1:
        lr = float(lr)
    if lr is not None and not (_is_number(lr) and math.isfinite(lr) and lr > 0):
        raise FieldError(f"{where}.lr", f"must be a finite number > 0, got {_describe(lr)}")
    betas = group.get("betas")
    if betas is not None and not (isinstance(betas, (list, tuple)) and len(betas) == 2
                                  and all(_is_number(b) and 0 <= b < 1 for b in betas)):
        raise FieldError(f"{where}.betas", f"must be two numbers in [0, 1), got {_describe(betas)}")
    for key in ("eps", "weight_decay"):
        if group.get(key) is not None:
            _check_number(f"{where}.{key}", group[key], minimum=0.0)


def _check_rng(rng: Any) -> None:
    """The global RNG states written by :func:`~tusk.training.checkpoint.rng_states`."""
    if not (isinstance(rng, dict) and {"torch", "numpy", "python"} <= set(rng)):
        raise FieldError("rng", f"must hold the torch, numpy and python RNG states, got {_describe(rng)}")
    expected = torch.get_rng_state().numel()
    state = rng["torch"]
    if not (isinstance(state, torch.Tensor) and state.dtype == torch.uint8 and state.shape == (expected,)):
        raise FieldError("rng.torch", f"must be a uint8 tensor of shape [{expected}], got {_describe(state)}")

    numpy_state = rng["numpy"]
    if not isinstance(numpy_state, dict):
        raise FieldError("rng.numpy", f"must be a mapping, got {_describe(numpy_state)}")
    if numpy_state.get("kind") != "MT19937":
        raise FieldError("rng.numpy.kind", f"must be 'MT19937', got {_describe(numpy_state.get('kind'))}")
    keys = numpy_state.get("keys")
    if not (isinstance(keys, torch.Tensor) and keys.dtype == torch.int64 and keys.shape == (MT_WORDS,)
            and bool(((keys >= 0) & (keys < 2**32)).all())):
        raise FieldError("rng.numpy.keys", f"must be {MT_WORDS} int64 values in [0, 2**32), got {_describe(keys)}")
    _check_integer("rng.numpy.pos", numpy_state.get("pos"), 0, MT_WORDS)
    _check_integer("rng.numpy.has_gauss", numpy_state.get("has_gauss"), 0, 1)
    _check_number("rng.numpy.cached", numpy_state.get("cached"))

    python_state = rng["python"]
    if not isinstance(python_state, dict):
        raise FieldError("rng.python", f"must be a mapping, got {_describe(python_state)}")
    _check_integer("rng.python.version", python_state.get("version"), 3, 3)
    internal = python_state.get("internal")
    if not (isinstance(internal, (list, tuple)) and len(internal) == MT_WORDS + 1
            and all(_is_integer(w) and 0 <= w < 2**32 for w in internal[:MT_WORDS])
            and _is_integer(internal[MT_WORDS]) and 0 <= internal[MT_WORDS] <= MT_WORDS):
        raise FieldError("rng.python.internal", f"must be {MT_WORDS} words in [0, 2**32) and a position in "
                                                f"[0, {MT_WORDS}], got {_describe(internal)}")
    gauss = python_state.get("gauss")
    if gauss is not None:
        _check_number("rng.python.gauss", gauss)
