"""Value rules of a run config, checked when it is loaded (:meth:`tusk.config.Config.validate`).

Types are checked while the file is read (:func:`tusk.config._check_type`); these rules catch
values of the right type that would fail later, deep in a run, or train on nonsense: a zero
image size, an empty test split (a bare ``StopIteration`` at the first picture), a negative
worker count, a NaN learning rate, Adam betas of 1, an unknown dataset or backend. Each error
names the key (``train.lr must be a finite number > 0, got nan``); :func:`tusk.config.load_config`
adds the file (or the ``--set`` override) it came from.
"""
from __future__ import annotations

import math
from typing import Any

from .config import Config, ConfigError

#: Seeds go to ``torch.manual_seed`` and numpy's ``SeedSequence``: non-negative, below 2**63.
SEED_LIMIT = 2**63

_POSITIVE_INTEGERS = ("data.image_size", "data.train_length", "data.test_length", "loss.sw_projections",
                      "train.eval_images")
_NON_NEGATIVE_INTEGERS = ("data.num_workers",)
_SEEDS = ("data.seed", "train.seed")
_POSITIVE = ("model.temperature", "model.variance", "loss.kmeans_temperature", "train.lr", "train.prototype_lr",
             "train.check_ops_tolerance")
_NON_NEGATIVE = ("loss.recon_weight", "loss.kmeans_weight", "loss.eqv_heatmap_weight", "loss.eqv_feature_weight",
                 "loss.sw_weight", "loss.gmm_noise_std", "loss.gmm_smoothing")
_OPTIONAL_FINITE = ("model.threshold",)
# Every random warp (loss.tps, and loss.augment unless null).
_WARP_POSITIVE = ("scale",)
_WARP_NON_NEGATIVE = ("scale_var", "tps_scale", "offset_scale", "rot_scale", "pad_fraction")
_WARP_FINITE = ("pad_value",)


def known_datasets() -> tuple[str, ...]:
    """Names ``data.dataset`` accepts: the package's datasets and the built-in toy ``squares``."""
    from .data.registry import DATASETS

    return (*DATASETS, "squares")


def known_backends() -> tuple[str, ...]:
    from .ops._backend import BACKENDS

    return tuple(BACKENDS)


def check_values(config: Config) -> None:
    """Raise :class:`~tusk.config.ConfigError` (with ``key``) for the first value out of range."""
    if not config.name:
        _fail("name", "must be a non-empty string", config.name)
    for key in _POSITIVE_INTEGERS:
        value = _get(config, key)
        if value is not None and value < 1:
            _fail(key, "must be an integer >= 1", value)
    for key in _NON_NEGATIVE_INTEGERS:
        if _get(config, key) < 0:
            _fail(key, "must be an integer >= 0", _get(config, key))
    for key in _SEEDS:
        if not 0 <= _get(config, key) < SEED_LIMIT:
            _fail(key, "must be an integer in [0, 2**63)", _get(config, key))
    for key in _POSITIVE:
        _check_finite(key, _get(config, key), lower=0.0, inclusive=False)
    for key in _NON_NEGATIVE:
        _check_finite(key, _get(config, key), lower=0.0, inclusive=True)
    for key in _OPTIONAL_FINITE:
        value = _get(config, key)
        if value is not None and not math.isfinite(value):
            _fail(key, "must be a finite number (or null)", value)
    for section in ("tps", "augment"):
        if getattr(config.loss, section) is not None:
            _check_warp(config, f"loss.{section}")
    for i, beta in enumerate(config.train.prototype_betas):
        if not 0 <= beta < 1:  # also false for NaN
            _fail(f"train.prototype_betas[{i}]", "must be a number in [0, 1)", beta)
    if config.data.dataset not in known_datasets():
        _fail("data.dataset", f"must be one of {', '.join(known_datasets())};", config.data.dataset)
    if config.train.backend is not None and config.train.backend not in known_backends():
        _fail("train.backend", f"must be one of {', '.join(known_backends())} (or null);", config.train.backend)


def _check_warp(config: Config, prefix: str) -> None:
    for name in _WARP_POSITIVE:
        _check_finite(f"{prefix}.{name}", _get(config, f"{prefix}.{name}"), lower=0.0, inclusive=False)
    for name in _WARP_NON_NEGATIVE:
        _check_finite(f"{prefix}.{name}", _get(config, f"{prefix}.{name}"), lower=0.0, inclusive=True)
    for name in _WARP_FINITE:
        _check_finite(f"{prefix}.{name}", _get(config, f"{prefix}.{name}"))


def _check_finite(key: str, value: float, lower: float | None = None, inclusive: bool = True) -> None:
    if lower is None:
        if not math.isfinite(value):
            _fail(key, "must be a finite number", value)
        return
    in_range = value >= lower if inclusive else value > lower
    if not (math.isfinite(value) and in_range):
        _fail(key, f"must be a finite number {'>=' if inclusive else '>'} {lower:g}", value)


def _get(config: Config, key: str) -> Any:
    value: Any = config
    for part in key.split("."):
        value = getattr(value, part)
    return value


def _fail(key: str, rule: str, value: Any) -> None:
    separator = "" if rule.endswith(";") else ","
    raise ConfigError(f"{key} {rule}{separator} got {value!r}", key=key)
