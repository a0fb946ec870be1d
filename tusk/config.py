"""Run configuration: the YAML files in ``tusk/configs/`` and their dataclasses.

A config has four sections, ``data``, ``model`` (:class:`tusk.model.ModelConfig`), ``loss``
and ``train``, plus a ``name``. Unknown keys are errors (a typo must not silently fall back to
a default). :func:`load_config` accepts a packaged name (``tetrominoes``, ``mnist_hard``, ...)
or a path to a YAML file; values left out take the defaults below.
"""
from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml

from .model.config import ModelConfig
from .model.tps import TpsParams


class ConfigError(ValueError):
    """A config file is missing, unreadable or holds bad values.

    ``key``: the dotted key at fault (``train.lr``), when one is.
    """

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


#: The official code's first, mild warp of every training image (an augmentation applied to
#: both images of an equivariance pair).
MILD_TPS = TpsParams(scale=0.98, scale_var=0.02, tps_scale=0.03, offset_scale=0.02, rot_scale=0.05)


@dataclass
class DataConfig:
    """Which dataset and how to read it (see ``tusk.data.build_dataset``).

    Attributes:
        dataset: dataset name (``tetrominoes``, ``mnist_hard``, ``clevr6``, ``celeba``, ``h36m``,
            or ``squares``, a tiny built-in toy set).
        root: directory holding the data files (``tusk train --data-dir``); None for procedural
            datasets.
        image_size: resize images to this size (None = native).
        train_length, test_length: number of items of procedural datasets (None = default).
        seed: dataset generation seed.
        download: let the loader download missing files.
        num_workers: DataLoader worker processes (0 = load in the training process).
    """

    dataset: str = "tetrominoes"
    root: str | None = None
    image_size: int | None = None
    train_length: int | None = None
    test_length: int | None = None
    seed: int = 0
    download: bool = False
    num_workers: int = 0


@dataclass
class LossConfig:
    """Loss terms and weights (official defaults; paper Sec. 3.3 and supplementary).

    Attributes:
        reconstruction: ``"mse"`` or ``"perceptual"`` (needs ``vgg_weights``).
        vgg_weights: local VGG16 ``state_dict`` file for the perceptual loss.
        recon_weight, kmeans_weight: weights of L_recon and L_km in the network step.
        eqv_heatmap_weight, eqv_feature_weight: weights of L_eqv on the score map and features.
        kmeans_temperature: softmin temperature on mean squared distances (official 20).
        sw_weight, sw_projections: L_sw weight and number of random projections (official 100).
        gmm_noise_std, gmm_smoothing: prototype GMM sampling noise (official 1/50) and share floor.
        tps: the random warp T of the equivariance pairs.
        augment: a milder random warp applied to both images of a pair first (None = off).
    """

    reconstruction: str = "mse"
    vgg_weights: str | None = None
    recon_weight: float = 1.0
    kmeans_weight: float = 0.01
    kmeans_temperature: float = 20.0
    eqv_heatmap_weight: float = 0.01
    eqv_feature_weight: float = 100.0
    sw_weight: float = 1.0
    sw_projections: int = 100
    gmm_noise_std: float = 0.02
    gmm_smoothing: float = 0.01
    tps: TpsParams = field(default_factory=TpsParams)
    augment: TpsParams | None = field(default_factory=lambda: dataclasses.replace(MILD_TPS))


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping.

    Attributes:
        steps: total training steps (one network step + ``sw_steps`` prototype steps each).
        batch_size: images per step; each is paired with a warped copy, so the network sees
            ``2 * batch_size`` images (the official batch counts pairs the same way).
        lr: Adam learning rate of encoder and decoder.
        prototype_lr, prototype_betas: Adam settings of the prototypes.
        sw_steps: prototype steps on L_sw after every network step (official 5 on MNIST, 8 else).
        seed: seeds initialisation and every random draw of every step.
        device: ``cpu``, ``cuda``, ``cuda:1``, ...
        backend: ``tusk.ops`` backend for the run (None = ``TUSK_BACKEND`` or ``auto``).
        log_every: steps between scalar logs; image_every: between image panels (0 = only at
            the end); checkpoint_every: between checkpoints (the last step is always saved).
        eval_images: test images used for the end-of-run metrics and pictures.
        check_ops: every N steps re-run the step on the reference ops and compare (0 = off).
        check_ops_tolerance: largest relative difference accepted by the op check.
    """

    steps: int = 1000
    batch_size: int = 16
    lr: float = 1e-3
    prototype_lr: float = 0.1
    prototype_betas: tuple[float, float] = (0.5, 0.999)
    sw_steps: int = 8
    seed: int = 0
    device: str = "cpu"
    backend: str | None = None
    log_every: int = 10
    image_every: int = 500
    checkpoint_every: int = 500
    eval_images: int = 64
    check_ops: int = 0
    check_ops_tolerance: float = 1e-4


@dataclass
class Config:
    name: str = "run"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def validate(self) -> None:
        from .config_checks import check_values

        check_values(self)
        try:
            self.model.validate()
            self.loss.tps.validate()
            if self.loss.augment is not None:
                self.loss.augment.validate()
        except ValueError as err:
            raise ConfigError(str(err)) from None
        if self.loss.reconstruction not in ("mse", "perceptual"):
            raise ConfigError(f"loss.reconstruction must be 'mse' or 'perceptual', got {self.loss.reconstruction!r}")
        if self.loss.reconstruction == "perceptual" and not self.loss.vgg_weights:
            raise ConfigError("loss.reconstruction is 'perceptual' but loss.vgg_weights (a local VGG16 "
                              "state_dict file) is not set")
        for name in ("steps", "batch_size"):
            if getattr(self.train, name) < 1:
                raise ConfigError(f"train.{name} must be >= 1, got {getattr(self.train, name)}")
        for name in ("sw_steps", "log_every", "image_every", "checkpoint_every", "check_ops", "eval_images"):
            if getattr(self.train, name) < 0:
                raise ConfigError(f"train.{name} must be >= 0, got {getattr(self.train, name)}")

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["train"]["prototype_betas"] = list(self.train.prototype_betas)
        return out


def _build(cls, values: Any, where: str):
    """Instantiate dataclass ``cls`` from a mapping, recursing into dataclass-typed fields."""
    if not isinstance(values, dict):
        raise ConfigError(f"{where or 'config'} must be a mapping, got {type(values).__name__}", key=where or None)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(f"unknown config key(s) {', '.join(prefix + k for k in unknown)}; "
                          f"known: {', '.join(sorted(fields))}", key=prefix + unknown[0])
    kwargs = {}
    for key, value in values.items():
        nested = _NESTED.get((cls, key))
        path = f"{where}.{key}" if where else key
        if nested is not None and value is not None:
            kwargs[key] = _build(nested, value, path)
        elif key == "prototype_betas":
            if not (isinstance(value, (list, tuple)) and len(value) == 2
                    and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
                raise ConfigError(f"{path} must be a pair of numbers, got {value!r}", key=path)
            kwargs[key] = tuple(float(v) for v in value)
        else:
            kwargs[key] = _check_type(value, fields[key].type, path)
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise ConfigError(f"{where or 'config'}: {err}") from None


_SCALARS = {"int": int, "float": float, "bool": bool, "str": str}
#: Floats PyYAML (YAML 1.1) reads as strings: ``1e-3`` (it wants ``1.0e-3``) and ``nan``/``inf``
#: (it wants ``.nan``/``.inf``; the value rules then refuse them with a clear message).
_STRING_FLOAT = re.compile(r"[-+]?((\d+\.?\d*|\.\d+)[eE][-+]?\d+|nan|inf|infinity)", re.IGNORECASE)


def _check_type(value: Any, annotation: str, path: str) -> Any:
    """Check a scalar against its field annotation (``"int"``, ``"float | None"``, ...)."""
    kinds = [part.strip() for part in str(annotation).split("|")]
    if value is None:
        if "None" in kinds:
            return None
        raise ConfigError(f"{path} must not be empty (expected {annotation})", key=path)
    for kind in kinds:
        expected = _SCALARS.get(kind)
        if expected is bool and isinstance(value, bool):
            return value
        if expected is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if expected is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if expected is float and isinstance(value, str) and _STRING_FLOAT.fullmatch(value.strip()):
            return float(value)
        if expected is str and isinstance(value, str):
            return value
    raise ConfigError(f"{path} must be {annotation.replace('None', 'null')}, got {value!r}", key=path)


_NESTED = {
    (Config, "data"): DataConfig,
    (Config, "model"): ModelConfig,
    (Config, "loss"): LossConfig,
    (Config, "train"): TrainConfig,
    (LossConfig, "tps"): TpsParams,
    (LossConfig, "augment"): TpsParams,
}


def config_from_dict(values: dict[str, Any]) -> Config:
    """A validated :class:`Config` from nested dicts (e.g. parsed YAML)."""
    config = _build(Config, values or {}, "")
    config.validate()
    return config


def packaged_configs() -> list[str]:
    """Names of the configs shipped in ``tusk/configs``."""
    files = resources.files("tusk").joinpath("configs")
    return sorted(p.name[:-5] for p in files.iterdir() if p.name.endswith(".yaml"))


def load_config(name_or_path: str | os.PathLike, overrides: Sequence[str] = ()) -> Config:
    """Load a packaged config by name, or a YAML file by path, then apply ``overrides``
    (``"train.batch_size=16"``, see :mod:`tusk.config_overrides`) and validate the result.

    Raises:
        ConfigError: no such name/file, invalid YAML, unknown keys or bad values; the message
            starts with the file, or with the override when the bad key is overridden.
    """
    text_name = os.fspath(name_or_path)
    if os.path.isfile(text_name):
        source = text_name
        try:
            with open(text_name, encoding="utf-8") as fh:
                text = fh.read()
        except OSError as err:
            raise ConfigError(f"cannot read config {text_name}: {err.strerror}") from None
    elif text_name in packaged_configs():
        source = f"packaged config {text_name!r}"
        text = resources.files("tusk").joinpath("configs", f"{text_name}.yaml").read_text(encoding="utf-8")
    else:
        raise ConfigError(f"no config file or packaged config named {text_name!r} "
                          f"(packaged: {', '.join(packaged_configs())})")
    try:
        values = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{source}: invalid YAML ({err})") from None
    if overrides:
        from .config_overrides import override_values

        values = override_values(values, overrides, source)
    try:
        return config_from_dict(values)
    except ConfigError as err:
        from .config_overrides import blame

        raise ConfigError(f"{blame(err, overrides) or source}: {err}", key=err.key) from None


def save_config(config: Config, path: str | os.PathLike) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        yaml.safe_dump(config.to_dict(), fh, sort_keys=False)
