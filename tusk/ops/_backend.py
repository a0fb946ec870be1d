"""Which implementation runs an op: ``backend=`` argument, ``TUSK_BACKEND`` env, availability.

Backends:

- ``reference``: plain PyTorch (:mod:`tusk.ops.reference`), always available, any device.
- ``cpp``: the C++ CPU kernels in ``tusk._C`` (CPU tensors).
- ``cuda``: the CUDA kernels in ``tusk._C`` (CUDA tensors; built when torch has CUDA and nvcc).
- ``triton``: the Triton kernels in :mod:`tusk.ops.triton` (CUDA tensors, or CPU tensors when
  ``TRITON_INTERPRET=1`` was set before triton was imported).
- ``auto`` (default): ``cpp`` on CPU; on CUDA the fastest compiled backend for the op (see
  :data:`AUTO_CUDA_PREFERENCE`), else ``reference``.

Precedence: ``backend=`` argument, then :func:`use_backend` (a context manager), then the
``TUSK_BACKEND`` environment variable, read when an op is called (under ``torch.compile``: when
it is traced).
"""
from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Iterator

import torch

BACKENDS = ("auto", "reference", "cpp", "cuda", "triton")
CPP_DTYPES = (torch.float32, torch.float64)

#: Per-op order tried by ``auto`` on CUDA tensors. Filled from the GPU benchmarks
#: (benchmarks/RESULTS.md); ops not listed prefer the CUDA extension, then Triton.
AUTO_CUDA_PREFERENCE: dict[str, tuple[str, ...]] = {}

_BUILD_HINT = (
    "Build it with `pip install .` from a source checkout (it compiles against the installed "
    "torch; see the README)."
)


def _probe_extension() -> tuple[bool, str]:
    """Import ``tusk._C``; returns (loaded, reason-if-not)."""
    try:
        importlib.import_module("tusk._C")
    except ImportError as err:  # not built, or built against another torch
        return False, f"tusk._C could not be imported ({err})"
    return True, ""


def _probe_triton() -> tuple[bool, str]:
    try:
        importlib.import_module("tusk.ops.triton")
    except ImportError as err:
        return False, f"the Triton kernels could not be imported ({err})"
    return True, ""


# Probed once at import (tusk.ops.__init__ probes Triton after the ops exist) and then only
# read, so that torch.compile can trace backend selection without tracing an import.
_EXTENSION: tuple[bool, str] = _probe_extension()
_TRITON: tuple[bool, str] = (False, "not probed yet")


def probe_triton() -> None:
    global _TRITON
    _TRITON = _probe_triton()


def _load_extension() -> tuple[bool, str]:
    return _EXTENSION


def _triton_status() -> tuple[bool, str]:
    return _TRITON


def cpp_available() -> bool:
    """True when the C++ extension (CPU kernels) is built and loads."""
    return _EXTENSION[0]


def _probe_cuda() -> bool:
    if not _EXTENSION[0] or not torch.cuda.is_available():
        return False
    return bool(torch._C._dispatch_has_kernel_for_dispatch_key("tusk::sample_descriptors", "CUDA"))


_CUDA: bool = _probe_cuda()


def cuda_available() -> bool:
    """True when the extension was built with its CUDA kernels and a GPU is visible."""
    return _CUDA


def triton_available(device: torch.device | None = None) -> bool:
    """True when Triton imports and can run on ``device`` (CUDA, or CPU under the interpreter)."""
    if not _triton_status()[0]:
        return False
    if device is None or device.type == "cuda":
        return torch.cuda.is_available()
    return device.type == "cpu" and os.environ.get("TRITON_INTERPRET") == "1"


def available_backends(device: torch.device | str = "cpu") -> list[str]:
    """Backends usable for tensors on ``device`` (excluding ``auto``)."""
    device = torch.device(device)
    names = ["reference"]
    if device.type == "cpu" and cpp_available():
        names.append("cpp")
    if device.type == "cuda" and cuda_available():
        names.append("cuda")
    if triton_available(device):
        names.append("triton")
    return names


_DEFAULT: list[str | None] = [None]  # set by use_backend(); None = TUSK_BACKEND or "auto"


@contextlib.contextmanager
def use_backend(name: str | None) -> Iterator[None]:
    """Within the block, ops called without ``backend=`` use ``name`` (None restores the env).

    Used e.g. by the trainer's op check to re-run a step on the reference backend::

        with tusk.ops.use_backend("reference"):
            loss = model(images)...
    """
    if name is not None and name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    previous = _DEFAULT[0]
    _DEFAULT[0] = name
    try:
        yield
    finally:
        _DEFAULT[0] = previous


def resolve_backend(op: str, backend: str | None, like: torch.Tensor) -> str:
    """Name of the backend that runs ``op`` for inputs like ``like`` (its device and dtype).

    Raises ``ValueError`` for an unknown name or a backend that cannot serve the device,
    ``TypeError`` for a dtype the chosen backend lacks, and ``RuntimeError`` (with build
    instructions) for a backend that is not built.
    """
    device = like.device
    name = backend if backend is not None else _DEFAULT[0]
    if name is None:
        name = os.environ.get("TUSK_BACKEND", "auto")
    if not isinstance(name, str) or name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    if name == "auto":
        name = _auto(op, device)
        # The C++ CPU kernels are float32/float64; half precision on CPU uses the reference.
        if name == "cpp" and like.dtype not in CPP_DTYPES:
            name = "reference"
        return name
    if name == "reference":
        return name
    if name == "cpp":
        if device.type != "cpu":
            raise ValueError(f"backend='cpp' runs on CPU tensors, got tensors on {device}")
        if not cpp_available():
            raise RuntimeError(f"backend='cpp' is not built: {_load_extension()[1]}. {_BUILD_HINT}")
        if like.dtype not in CPP_DTYPES:
            raise TypeError(
                f"backend='cpp' supports float32 and float64, got {like.dtype} "
                f"(use backend='reference', or a GPU backend for half precision)"
            )
        return name
    if name == "cuda":
        if device.type != "cuda":
            raise ValueError(f"backend='cuda' runs on CUDA tensors, got tensors on {device}")
        if not cuda_available():
            reason = _load_extension()[1] or "tusk._C was built without its CUDA kernels"
            raise RuntimeError(
                f"backend='cuda' is not available: {reason}. Build on a machine with nvcc and a "
                f"CUDA-enabled torch: `pip install --no-build-isolation .`"
            )
        return name
    # triton
    if not _triton_status()[0]:
        raise RuntimeError(f"backend='triton' is not available: {_triton_status()[1]}")
    if not triton_available(device):
        raise ValueError(
            f"backend='triton' runs on CUDA tensors (or CPU tensors with TRITON_INTERPRET=1 set "
            f"before triton is imported), got tensors on {device}"
        )
    return name


def _auto(op: str, device: torch.device) -> str:
    if device.type == "cpu":
        return "cpp" if cpp_available() else "reference"
    if device.type == "cuda":
        order = AUTO_CUDA_PREFERENCE.get(op, ("cuda", "triton"))
        for name in order:
            if (name == "cuda" and cuda_available()) or (name == "triton" and triton_available(device)):
                return name
    return "reference"


def describe() -> dict[str, object]:
    """Versions and backend availability, for ``tusk info`` and bug reports."""
    try:
        import triton

        triton_version = triton.__version__
    except ImportError:
        triton_version = None
    cpu = available_backends("cpu")
    info: dict[str, object] = {
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "triton": triton_version,
        "cpp": cpp_available(),
        "cpp_error": _load_extension()[1] or None,
        "cuda": cuda_available(),
        "triton_backend": _triton_status()[0],
        "triton_error": _triton_status()[1] or None,
        "usable_cpu": cpu,
        "usable_cuda": available_backends("cuda") if torch.cuda.is_available() else [],
        "auto_cpu": _auto("", torch.device("cpu")),
        "threads": torch.get_num_threads(),
    }
    return info


def kernel_namespace(name: str):
    """The ``torch.ops`` namespace holding the compiled ops of backend ``name``.

    ``cpp`` and ``cuda`` share ``torch.ops.tusk`` (the dispatcher picks the CPU or CUDA kernel by
    device); ``triton`` ops live in ``torch.ops.tusk_triton`` with the same schemas.
    """
    if name == "triton":
        return torch.ops.tusk_triton
    return torch.ops.tusk
