"""``--check-ops``: replay a training step on the reference ops and compare.

Every N steps the trainer re-runs the step's forward and backward with
``tusk.ops.use_backend("reference")`` on the same images, warps, parameters and random draws,
and compares, for each output an op produces or shapes, the largest difference relative to the
reference's largest magnitude:

- ``xy``, ``scores``, ``valid`` (detect_keypoints), ``descriptors`` (sample_descriptors),
  ``reconstruction`` (splat_gaussians + decoder [+ alpha_composite]), ``alpha``;
- the loss terms; gradients of the encoder and decoder parameters, and of the tensors where
  each op's backward lands (:data:`GRADIENT_TENSORS`); in the prototype step, ``sw_loss`` and
  the prototype gradient (gmm_prototype_samples + sliced_wasserstein).

A difference above the tolerance raises :class:`OpCheckError` naming the outputs.
"""
from __future__ import annotations

from collections.abc import Iterable

import torch

from .. import ops


class OpCheckError(RuntimeError):
    """The configured op backend disagrees with the reference beyond the tolerance."""


def relative_difference(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """``max |a - e| / max |e|`` (float64; 0 when both are all-zero; bools: mismatch fraction)."""
    if actual.dtype == torch.bool or expected.dtype == torch.bool:
        return float((actual != expected).double().mean()) if actual.numel() else 0.0
    a, e = actual.detach().double(), expected.detach().double()
    if a.shape != e.shape:
        return float("inf")
    if a.numel() == 0:
        return 0.0
    diff = (a - e).abs().max()
    if torch.isnan(diff):
        return float("inf")
    scale = torch.maximum(e.abs().max(), a.abs().max())
    return float(diff / scale) if scale > 0 else 0.0


def grouped_difference(actual: Iterable[torch.Tensor | None], expected: Iterable[torch.Tensor | None]) -> float:
    """Relative difference of a group of gradients, scaled by the group's largest entry."""
    diff, scale = 0.0, 0.0
    for a, e in zip(actual, expected):
        if a is None and e is None:
            continue
        a = torch.zeros_like(e) if a is None else a
        e = torch.zeros_like(a) if e is None else e
        diff = max(diff, float((a.double() - e.double()).abs().max()))
        scale = max(scale, float(e.double().abs().max()), float(a.double().abs().max()))
    if diff != diff:  # NaN
        return float("inf")
    return diff / scale if scale > 0 else 0.0


def output_differences(actual, expected) -> dict[str, float]:
    """Differences of the op-relevant outputs of two :class:`tusk.model.TuskOutput`."""
    names = ["xy", "scores", "valid", "descriptors", "reconstruction"]
    if expected.alpha is not None:
        names.append("alpha")
    return {name: relative_difference(getattr(actual, name), getattr(expected, name)) for name in names}


#: Intermediate tensors whose gradients isolate the ops' backward passes: ``xy``, ``scores``
#: and ``descriptors`` receive splat_gaussians' (and alpha_composite's) backward; ``score_map``
#: detect_keypoints'; ``features`` sample_descriptors'. Parameter gradients alone can hide an
#: op whose path is a small share of the total (e.g. next to the feature equivariance term).
GRADIENT_TENSORS = ("xy", "scores", "descriptors", "score_map", "features")


def retain_gradients(output) -> None:
    """Keep ``.grad`` of the :data:`GRADIENT_TENSORS` of a forward output (call before backward)."""
    for name in GRADIENT_TENSORS:
        tensor = getattr(output, name)
        if tensor.requires_grad:
            tensor.retain_grad()


def network_differences(model, losses, reference_losses) -> dict[str, float]:
    """Compare a network step (outputs, loss terms, gradients) against its reference replay.

    ``losses`` must already be back-propagated, with :func:`retain_gradients` called on its
    output first; the reference gradients are taken with ``torch.autograd.grad`` so no
    ``.grad`` is touched.
    """
    groups = {"encoder": list(model.encoder.parameters()), "decoder": list(model.decoder.parameters())}
    params = [p for group in groups.values() for p in group]
    names = [n for n in GRADIENT_TENSORS if getattr(reference_losses.output, n).requires_grad]
    inputs = params + [getattr(reference_losses.output, n) for n in names]
    reference_grads = torch.autograd.grad(reference_losses.total, inputs, allow_unused=True)
    out = {f"fwd/{k}": v for k, v in output_differences(losses.output, reference_losses.output).items()}
    for term in ("reconstruction", "kmeans", "eqv_heatmap", "eqv_feature"):
        out[f"fwd/loss_{term}"] = relative_difference(getattr(losses, term), getattr(reference_losses, term))
    offset = 0
    for name, group in groups.items():
        expected = reference_grads[offset:offset + len(group)]
        out[f"grad/{name}"] = grouped_difference([p.grad for p in group], expected)
        offset += len(group)
    for name, expected in zip(names, reference_grads[offset:]):
        out[f"grad/{name}"] = grouped_difference([getattr(losses.output, name).grad], [expected])
    return out


def prototype_differences(loss: torch.Tensor, grad: torch.Tensor, descriptors: torch.Tensor,
                          reference_loss: torch.Tensor, reference_grad: torch.Tensor,
                          reference_descriptors: torch.Tensor) -> dict[str, float]:
    """Compare the first prototype step (descriptors, L_sw, prototype gradient)."""
    return {
        "fwd/prototype_descriptors": relative_difference(descriptors, reference_descriptors),
        "fwd/loss_sw": relative_difference(loss, reference_loss),
        "grad/prototypes": grouped_difference([grad], [reference_grad]),
    }


def reference_backend():
    """Context manager forcing every op onto the reference backend."""
    return ops.use_backend("reference")


def check(differences: dict[str, float], tolerance: float, step: int, backend: str) -> None:
    """Raise :class:`OpCheckError` if any difference exceeds ``tolerance``."""
    bad = {k: v for k, v in differences.items() if not v <= tolerance}
    if bad:
        table = ", ".join(f"{k}={v:.3g}" for k, v in sorted(bad.items()))
        raise OpCheckError(
            f"op check failed at step {step}: backend {backend!r} differs from the reference beyond "
            f"the relative tolerance {tolerance:g}: {table}"
        )
