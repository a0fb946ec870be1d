"""Shared fixtures: the (device, backend) targets every op test runs on, dtypes, seeding.

Targets are fixed, not discovered: a missing C++ build makes the ``cpp`` tests fail, never skip.
GPU targets skip only when no CUDA GPU is visible.

Without a GPU the Triton kernels run on CPU tensors under the Triton interpreter. It must be on
before the kernels are defined (``@triton.jit`` reads it when ``tusk.ops`` imports its Triton
backend) and is safest before triton itself is imported: ``import torch`` imports neither, but
``torch._dynamo`` (so ``torch.compile``) imports triton. So it is set here, before any test module
is collected. The ``("cpu", "triton")`` target then runs the op tests at their small shapes.

The interpreter runs each Triton program in Python, about 10^4 times slower than the GPU: a test
marked ``compiled_sizes`` (multi-MB inputs that exercise the C++ buffer pool, streaming stores and
64-bit offsets of the compiled kernels) is deselected for ``("cpu", "triton")`` (pytest counts it
under "deselected"); it runs for ``("cuda", "triton")`` on a GPU. ``tests/test_triton_parity.py``
covers the interpreter at odd small shapes in every dtype.
"""
import importlib.util
import os
import sys

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


def _inductor_cache_dir() -> str:
    """A compile cache private to this checkout's op definitions.

    Inductor's on-disk cache (one directory per user by default) does not key its entries on the
    schemas of custom ops: a graph compiled against an older ``tusk::detect_keypoints`` (say, with
    fewer arguments) was replayed against the new one and failed ``test_compile_fullgraph``. The
    directory name hashes the schema table and the Python op wrappers, so checkouts (or commits)
    that define the ops differently never share compiled graphs.
    """
    import hashlib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha1()
    for path in sorted([root / "csrc" / "schemas.h", *(root / "tusk" / "ops").rglob("*.py")]):
        if path.is_file():
            digest.update(path.read_bytes())
    return str(root / "build" / f"torchinductor-{digest.hexdigest()[:12]}")


os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", _inductor_cache_dir())

HAS_GPU = torch.cuda.is_available()
needs_gpu = pytest.mark.skipif(not HAS_GPU, reason="needs a CUDA GPU")
#: The Triton kernels run on CPU tensors: interpreter on (set above or by the user) and triton
#: installed (a dependency on Linux, so a broken install fails the tests there instead of hiding them).
TRITON_ON_CPU = os.environ.get("TRITON_INTERPRET") == "1" and (
    sys.platform.startswith("linux") or importlib.util.find_spec("triton") is not None
)

CPU_TARGETS = [("cpu", "reference"), ("cpu", "cpp")] + ([("cpu", "triton")] if TRITON_ON_CPU else [])
GPU_TARGETS = [("cuda", "reference"), ("cuda", "cuda"), ("cuda", "triton")]


def _target_params(include_reference: bool):
    keep = (lambda t: True) if include_reference else (lambda t: t[1] != "reference")
    params = [pytest.param(t, id=f"{t[0]}-{t[1]}") for t in CPU_TARGETS if keep(t)]
    params += [pytest.param(t, id=f"{t[0]}-{t[1]}", marks=needs_gpu) for t in GPU_TARGETS if keep(t)]
    return params


@pytest.fixture(params=_target_params(include_reference=True))
def target(request):
    """``(device, backend)``: every backend, the reference included."""
    return request.param


@pytest.fixture(params=_target_params(include_reference=False))
def kernel_target(request):
    """``(device, backend)`` of the compiled backends, for comparisons against the reference."""
    return request.param


@pytest.fixture(params=[torch.float32, torch.float64], ids=["f32", "f64"])
def dtype(request):
    return request.param


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


def _target_of(item):
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return None
    return callspec.params.get("target", callspec.params.get("kernel_target"))


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "compiled_sizes: multi-MB inputs for the compiled kernels; not run on the Triton interpreter",
    )


def pytest_collection_modifyitems(config, items):
    interpreted = [
        item for item in items
        if item.get_closest_marker("compiled_sizes") is not None and _target_of(item) == ("cpu", "triton")
    ]
    if interpreted:
        config.hook.pytest_deselected(items=interpreted)
        dropped = {id(item) for item in interpreted}
        items[:] = [item for item in items if id(item) not in dropped]


def pytest_report_header(config):
    from tusk.ops import describe

    info = describe()
    return [
        f"tusk backends: cpu={info['usable_cpu']} cuda={info['usable_cuda']} "
        f"TUSK_BACKEND={os.environ.get('TUSK_BACKEND', 'auto')}",
    ]
