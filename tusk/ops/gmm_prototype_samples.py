"""Public op: TUSK's prototype GMM sampling."""
from __future__ import annotations

import torch

from . import reference
from ._backend import cpp_available, kernel_namespace, resolve_backend
from ._checks import check_float, check_ndim, check_same


def _non_negative(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not 0 <= float(value) < float("inf"):
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return float(value)


def gmm_prototype_samples(
    prototypes: torch.Tensor,
    features: torch.Tensor,
    *,
    noise_std: float = 0.02,
    smoothing: float = 0.01,
    generator: torch.Generator | None = None,
    backend: str | None = None,
) -> torch.Tensor:
    """Draw as many samples from the prototype GMM as there are features.

    Each prototype's share is the fraction of features nearest to it, smoothed by
    ``smoothing`` plus the variance of the per-prototype spreads (as in TUSK's supplementary
    and official code), turned into integer counts by the largest-remainder method; each
    prototype is repeated that many times, Gaussian noise of std ``noise_std`` is added and the
    samples are L2-normalised. See :func:`tusk.ops.reference.gmm_prototype_samples.prototype_counts`.

    Args:
        prototypes: ``[M, C]`` (usually L2-normalised).
        features: ``[..., C]`` descriptors; flattened to ``[N, C]``. Not differentiated.
        noise_std: standard deviation of the additive noise (>= 0; the official 1/50).
        smoothing: share floor added to every prototype (>= 0).
        generator: random generator for the noise. (TorchDynamo cannot trace a
            ``torch.Generator`` yet: under ``torch.compile`` leave it ``None``.)
        backend: ``auto|reference|cpp|cuda|triton`` (default: ``TUSK_BACKEND`` or ``auto``).

    Returns:
        ``[N, C]`` unit-norm samples grouped by prototype; differentiable w.r.t. ``prototypes``.
        All NaN when the features or prototypes are not finite (the shares are undefined).
        Every backend draws the same noise from the same generator state.

    Example:
        >>> protos = torch.eye(3)
        >>> samples = gmm_prototype_samples(protos, torch.eye(3).repeat(2, 1), noise_std=0.0)
        >>> samples.shape
        torch.Size([6, 3])
    """
    prototypes = check_float("prototypes", prototypes)
    features = check_float("features", features)
    check_ndim("prototypes", prototypes, 2, "[M, C]")
    count, channels = prototypes.shape
    if count == 0 or channels == 0:
        raise ValueError(f"prototypes must have M >= 1 rows of C >= 1 channels, got {tuple(prototypes.shape)}")
    if features.dim() < 1 or features.shape[-1] != channels:
        raise ValueError(
            f"features must have shape [..., C] with C = {channels} as prototypes, got {tuple(features.shape)}"
        )
    check_same(("prototypes", "features"), (prototypes, features))
    points = features.numel() // channels
    if points == 0:
        raise ValueError("features must hold at least one descriptor")
    noise_std = _non_negative("noise_std", noise_std)
    smoothing = _non_negative("smoothing", smoothing)
    device = generator.device if generator is not None else prototypes.device
    # normal_(0, std) draws the scaled noise in one op (randn then * std costs ~3 us more).
    noise = torch.empty((points, channels), device=device, dtype=prototypes.dtype)
    noise = noise.normal_(0.0, noise_std, generator=generator).to(prototypes.device)

    name = resolve_backend("gmm_prototype_samples", backend, prototypes)
    # No gradient to the features: they only choose the counts (piecewise constant).
    flat = features.detach().reshape(points, channels)
    if name == "reference":
        return reference.gmm_prototype_samples(prototypes, flat, noise, smoothing=smoothing)
    return kernel_namespace(name).gmm_prototype_samples(prototypes, flat, noise, smoothing)[0]


def _register_cpp() -> None:
    # Autograd is registered in C++ (csrc/gmm_prototype_samples/gmm_prototype_samples_autograd.cpp):
    # the Python autograd.Function of register_autograd measured ~45 us more per forward + backward.
    @torch.library.register_fake("tusk::gmm_prototype_samples")
    def _(prototypes, features, noise, smoothing):
        return noise.new_empty(noise.shape), noise.new_empty((noise.shape[0],), dtype=torch.int64)

    @torch.library.register_fake("tusk::gmm_prototype_samples_backward")
    def _(grad, prototypes, noise, assignment):
        return prototypes.new_empty(prototypes.shape)


if cpp_available():
    _register_cpp()
