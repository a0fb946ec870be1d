"""One tolerance table per dtype for comparing a backend against the reference.

Half-precision rows compare a GPU backend's output (float32 accumulation) against the reference
evaluated in float32 on the same (rounded) inputs, so they only absorb the output rounding and
accumulation-order differences; bf16 is never looser than 1e-2 relative.
"""
import torch

TOLERANCES = {
    torch.float64: {"rtol": 1e-9, "atol": 1e-10},
    torch.float32: {"rtol": 1e-5, "atol": 2e-5},
    torch.float16: {"rtol": 5e-3, "atol": 5e-3},
    torch.bfloat16: {"rtol": 1e-2, "atol": 1e-2},
}


def assert_close(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype | None = None, scale: float = 1.0, msg: str = "") -> None:
    """``torch.testing.assert_close`` with the table's tolerance for ``dtype`` (times ``scale``).

    ``expected`` may be a higher-precision reference; it is cast to ``actual``'s dtype first.
    """
    tol = TOLERANCES[dtype or actual.dtype]
    torch.testing.assert_close(
        actual, expected.to(actual.dtype), rtol=tol["rtol"] * scale, atol=tol["atol"] * scale,
        equal_nan=True, msg=(lambda m: f"{msg}\n{m}") if msg else None,
    )
