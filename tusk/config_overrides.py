"""``--set KEY=VALUE`` overrides of a run config, and the keys a resumed run may change.

An override names a key with dots (``train.batch_size``, ``loss.tps.scale``) and gives its
value in YAML (``16``, ``1e-3``, ``[0.5, 0.999]``, ``null``, ``{scale: 0.9}``), typed and
validated exactly like the same value in a config file. Overrides apply in order, after the
file's values and the defaults (so ``--set loss.augment.rot_scale=0.1`` changes one field of
the default warp), before validation; a mapping value replaces the whole section. Unknown keys
are errors, and an error caused by an override names it (``--set train.lr=nan: train.lr must
be a finite number > 0, got nan``).

A resumed run keeps its config, except for :data:`RESUMABLE_KEYS`: the length of the run, where
it runs and where its data lives, and bookkeeping that does not change what it computes.
"""
from __future__ import annotations

import copy
import dataclasses
import re
from collections.abc import Sequence
from typing import Any

import yaml

from .config import _NESTED, Config, ConfigError, _build, config_from_dict

#: Keys ``tusk train --resume`` may override; the Trainer takes them from the config it is given.
RESUMABLE_KEYS = (
    "train.steps", "train.device", "train.backend", "train.check_ops", "train.check_ops_tolerance",
    "train.log_every", "train.image_every", "train.checkpoint_every", "train.eval_images",
    "data.root", "data.num_workers",
)

_KEY = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
_KEY_IN_MESSAGE = re.compile(r"(?:unknown config key\(s\) )?([A-Za-z_][\w.]*)")


def parse_override(text: str) -> tuple[str, Any]:
    """``"train.batch_size=16"`` -> ``("train.batch_size", 16)`` (the value parsed as YAML).

    Raises:
        ConfigError: no ``=``, a malformed key, or a value that is not valid YAML.
    """
    key, equals, value = text.partition("=")
    key = key.strip()
    if not equals or not _KEY.fullmatch(key):
        raise ConfigError(f"--set expects KEY=VALUE with a dotted KEY (e.g. train.batch_size=16), got {text!r}")
    try:
        return key, yaml.safe_load(value)
    except yaml.YAMLError as err:
        problem = str(err).splitlines()[0]
        raise ConfigError(f"--set {text}: invalid YAML value ({problem})", key=key) from None


def apply_overrides(values: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """A copy of the nested config mapping ``values`` with ``overrides`` set in order (missing
    or null sections on the way are created).

    Raises:
        ConfigError: a malformed override or an unknown key, naming the override.
    """
    out = copy.deepcopy(values) if values is not None else {}
    for text in overrides:
        key, value = parse_override(text)
        parts = key.split(".")
        try:
            _check_key(parts)
        except ConfigError as err:
            raise ConfigError(f"--set {text}: {err}", key=key) from None
        target = out
        for part in parts[:-1]:
            if not isinstance(target.get(part), dict):
                target[part] = {}
            target = target[part]
        target[parts[-1]] = value
    return out


def override_values(values: Any, overrides: Sequence[str], source: str) -> dict[str, Any]:
    """``values`` read from ``source`` with its defaults filled in and ``overrides`` applied
    (not yet validated: a value the file gets wrong may be fixed by an override).

    Raises:
        ConfigError: a key or type error in the file (naming ``source``) or in an override.
    """
    try:
        base = _build(Config, values if values is not None else {}, "")
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}", key=err.key) from None
    return apply_overrides(base.to_dict(), overrides)


def override_config(config: Config, overrides: Sequence[str], *, resuming: bool = False) -> Config:
    """A validated copy of ``config`` with ``overrides`` applied; with ``resuming`` only
    :data:`RESUMABLE_KEYS` may be set.

    Raises:
        ConfigError: naming the override at fault.
    """
    if resuming:
        for text in overrides:
            key, _ = parse_override(text)
            if key not in RESUMABLE_KEYS:
                raise ConfigError(f"--set {text}: a resumed run keeps its config; only {', '.join(RESUMABLE_KEYS)} "
                                  "may change (start a new run to change the rest)", key=key)
    values = apply_overrides(config.to_dict(), overrides)
    try:
        return config_from_dict(values)
    except ConfigError as err:
        raise ConfigError(f"{blame(err, overrides) or 'config'}: {err}", key=err.key) from None


def carry_resumable(stored: Config, given: Config) -> Config:
    """``stored`` (a resumed run's config) with the :data:`RESUMABLE_KEYS` taken from ``given``."""
    for key in RESUMABLE_KEYS:
        *sections, name = key.split(".")
        source, target = given, stored
        for section in sections:
            source, target = getattr(source, section), getattr(target, section)
        setattr(target, name, getattr(source, name))
    return stored


def blame(err: ConfigError, overrides: Sequence[str]) -> str | None:
    """``"--set KEY=VALUE"`` if the key of ``err`` is (in) the last override that set it, else None."""
    key = err.key
    if key is None:
        match = _KEY_IN_MESSAGE.match(str(err))
        key = match.group(1) if match else None
    if key is None:
        return None
    for text in reversed(overrides):
        name = text.partition("=")[0].strip()
        if key == name or key.startswith((f"{name}.", f"{name}[")) or name.startswith(f"{key}."):
            return f"--set {text}"
    return None


def _check_key(parts: list[str]) -> None:
    cls = Config
    for i, part in enumerate(parts):
        names = sorted(f.name for f in dataclasses.fields(cls))
        where = ".".join(parts[:i])
        if part not in names:
            known = f"known in {where}" if where else "known"
            raise ConfigError(f"unknown config key {'.'.join(parts[:i + 1])}; {known}: {', '.join(names)}")
        nested = _NESTED.get((cls, part))
        if i < len(parts) - 1:
            if nested is None:
                raise ConfigError(f"{'.'.join(parts[:i + 1])} is a value, not a section")
            cls = nested
