"""``--check-ops``: replay every op call of a training step on the reference backend.

Every N steps the trainer records the step with an :class:`OpTape`: each call the model and
losses make to a :mod:`tusk.ops` function (its inputs, arguments, random-generator state and
outputs) and, during backward, the gradient arriving at each output. Each recorded call is then
run again twice on exactly those inputs, once on the run's backend and once with
``backend="reference"``, forward and backward (with the recorded upstream gradients), and the
results are compared: per op output (forward) and per op input (gradient), the largest
difference relative to the reference's largest magnitude. A difference above the tolerance
raises :class:`OpCheckError` naming the op and tensor.

Why per op and not the whole network: re-running the whole step on the reference ops lets
float32 rounding differences (1e-7) propagate through the decoder into the upstream gradients.
Some op gradients are ill-conditioned by nature (the positional gradient of a 0.05 px^2
Gaussian splat is a cancellation of terms ~1000x larger), and with correct C++ kernels the
whole-step replay measured a 1% relative difference in d(loss)/d(xy). Replaying each op on the
same inputs and upstream gradients isolates the kernels: correct ones then agree to ~1e-6.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import torch

from .. import ops

#: The ops a TUSK step calls, with names for their tensor outputs and differentiable inputs.
OP_SIGNATURES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "detect_keypoints": (("xy", "score", "valid"), ("scores",)),
    "sample_descriptors": (("descriptors",), ("features", "xy")),
    "splat_gaussians": (("map",), ("xy", "descriptors", "weights")),
    "alpha_composite": (("image", "alpha"), ("rgb", "alpha_logits")),
    "gmm_prototype_samples": (("samples",), ("prototypes", "features")),
    "sliced_wasserstein": (("distance",), ("x", "y")),
}


class OpCheckError(RuntimeError):
    """The run's op backend disagrees with the reference beyond the tolerance."""


def relative_difference(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """``max |a - e| / max(|a|, |e|)`` (float64; 0 when both are all-zero; bools: mismatch
    fraction; inf for a shape mismatch or NaN appearing on one side only)."""
    if actual.dtype == torch.bool or expected.dtype == torch.bool:
        return float((actual != expected).double().mean()) if actual.numel() else 0.0
    a, e = actual.detach().double(), expected.detach().double()
    if a.shape != e.shape:
        return float("inf")
    if a.numel() == 0:
        return 0.0
    both_nan = torch.isnan(a) & torch.isnan(e)
    a, e = torch.where(both_nan, 0.0, a), torch.where(both_nan, 0.0, e)
    diff = (a - e).abs().max()
    if torch.isnan(diff):
        return float("inf")
    scale = torch.maximum(e.abs().max(), a.abs().max())
    return float(diff / scale) if scale > 0 else 0.0


def _tensors(out: Any) -> tuple[torch.Tensor, ...]:
    if isinstance(out, torch.Tensor):
        return (out,)
    return tuple(out)  # Detections and (image, alpha) tuples


@dataclass
class OpCall:
    """One recorded op call."""

    name: str
    args: tuple
    kwargs: dict
    generator_state: torch.Tensor | None
    outputs: tuple[torch.Tensor, ...]
    cotangents: list[torch.Tensor | None] = field(default_factory=list)
    function: Any = None


class OpTape:
    """Context manager recording the :mod:`tusk.ops` calls made inside it (see module doc).

    The model and losses look ops up on the :mod:`tusk.ops` module at call time, so the tape
    swaps in recording wrappers for its duration. Gradients reaching recorded outputs are
    captured by tensor hooks whenever backward runs (inside the block or after it).
    """

    def __init__(self) -> None:
        self.calls: list[OpCall] = []
        self._saved: dict[str, Any] = {}

    def __enter__(self) -> "OpTape":
        for name in OP_SIGNATURES:
            self._saved[name] = getattr(ops, name)
            setattr(ops, name, self._recording(name, self._saved[name]))
        return self

    def __exit__(self, *exc) -> None:
        for name, fn in self._saved.items():
            setattr(ops, name, fn)
        self._saved.clear()

    def _recording(self, name: str, fn):
        @functools.wraps(fn)
        def recorded(*args, **kwargs):
            generator = kwargs.get("generator")
            state = generator.get_state() if generator is not None else None
            out = fn(*args, **kwargs)
            outputs = _tensors(out)
            call = OpCall(
                name, tuple(a.detach() if isinstance(a, torch.Tensor) else a for a in args),
                {k: v for k, v in kwargs.items() if k not in ("generator", "backend")}, state,
                tuple(o.detach() for o in outputs), [None] * len(outputs), fn,
            )
            for i, tensor in enumerate(outputs):
                if tensor.requires_grad:
                    tensor.register_hook(functools.partial(_store_cotangent, call, i))
            self.calls.append(call)
            return out
        return recorded

    def differences(self, backend: str | None) -> dict[str, float]:
        """Replay every recorded call on ``backend`` and on the reference; the largest relative
        difference per ``"<op>/<output>"`` (forward) and ``"<op>/d<input>"`` (gradient)."""
        out: dict[str, float] = {}
        for call in self.calls:
            for key, value in _compare_call(call, backend).items():
                out[key] = max(out.get(key, 0.0), value)
        return out


def _store_cotangent(call: OpCall, index: int, grad: torch.Tensor | None) -> None:
    if grad is None:  # an unused output of a multi-output op (e.g. alpha_composite's alpha)
        return
    previous = call.cotangents[index]
    call.cotangents[index] = grad.detach().clone() if previous is None else previous + grad.detach()


def _run(call: OpCall, backend: str | None):
    """One replay: fresh leaf copies of the inputs, the op on ``backend``, forward outputs and
    gradients of the inputs for the recorded cotangents."""
    args = [a.clone().requires_grad_(a.is_floating_point()) if isinstance(a, torch.Tensor) else a
            for a in call.args]
    kwargs = dict(call.kwargs)
    if call.generator_state is not None:
        kwargs["generator"] = torch.Generator().set_state(call.generator_state)
    outputs = _tensors(call.function(*args, backend=backend, **kwargs))
    pairs = [(o, c) for o, c in zip(outputs, call.cotangents) if c is not None and o.requires_grad]
    inputs = [a for a in args if isinstance(a, torch.Tensor) and a.requires_grad]
    grads: list[torch.Tensor | None] = [None] * len(inputs)
    if pairs and inputs:
        grads = list(torch.autograd.grad([o for o, _ in pairs], inputs, [c for _, c in pairs], allow_unused=True))
    return [o.detach() for o in outputs], grads


def _compare_call(call: OpCall, backend: str | None) -> dict[str, float]:
    output_names, input_names = OP_SIGNATURES[call.name]
    with torch.enable_grad():
        actual, actual_grads = _run(call, backend)
        expected, expected_grads = _run(call, "reference")
    out = {f"{call.name}/{output_names[i]}": relative_difference(a, e)
           for i, (a, e) in enumerate(zip(actual, expected))}
    tensor_inputs = [i for i, a in enumerate(call.args) if isinstance(a, torch.Tensor) and a.is_floating_point()]
    for slot, (a, e) in zip(tensor_inputs, zip(actual_grads, expected_grads)):
        if a is None and e is None:
            continue
        name = input_names[slot] if slot < len(input_names) else f"arg{slot}"
        a = torch.zeros_like(e) if a is None else a
        e = torch.zeros_like(a) if e is None else e
        out[f"{call.name}/d{name}"] = relative_difference(a, e)
    return out


def check(differences: dict[str, float], tolerance: float, step: int, backend: str) -> None:
    """Raise :class:`OpCheckError` if any difference exceeds ``tolerance``."""
    bad = {k: v for k, v in differences.items() if not v <= tolerance}
    if bad:
        table = ", ".join(f"{k}={v:.3g}" for k, v in sorted(bad.items()))
        raise OpCheckError(
            f"op check failed at step {step}: backend {backend!r} differs from the reference beyond "
            f"the relative tolerance {tolerance:g}: {table}"
        )


def worst(differences: dict[str, float]) -> tuple[str, float]:
    name = max(differences, key=differences.get)
    return name, differences[name]


__all__ = ["OP_SIGNATURES", "OpCall", "OpCheckError", "OpTape", "check", "relative_difference", "worst"]
