"""The CUDA kernels of ``kernels/`` compiled for the host emulator, as ``torch.ops.tusk_cuda_emulation``.

Without a GPU the CUDA code itself can still run: every ``kernels/*.cu`` file is preprocessed
against the emulator's stand-ins for the CUDA headers (``kernels/emulation/include``),
translated (``kernels/emulation/translate.py``: launches and ``__shared__`` declarations) and
compiled by the host compiler together with the emulator (``kernels/emulation/runtime.cpp``) and
the very dispatcher glue that ships (``csrc/**/*_cuda.cpp`` with ``TUSK_CUDA_EMULATION``). The
ops take CPU tensors and have the schemas of ``torch.ops.tusk``; each thread of a block runs as
a fiber, so barriers, warp shuffles, shared memory and launch geometry are exercised as written.

Built once into ``build/cuda-emulation`` (ninja rebuilds what changed; about a minute from
scratch on 2 cores). ``controls()`` gives the emulator's ctypes controls (``runtime_api.h``).

With ``TUSK_EMULATION_SANITIZE=address`` the library is built with AddressSanitizer (into
``build/cuda-emulation-asan``): every out-of-bounds read or write of the kernels, in tensors,
shared memory or thread-local arrays, aborts with a report. The process must start with the ASan
runtime preloaded, and libstdc++ with it (else ASan cannot intercept C++ exceptions, which the
glue's checks throw); ``.ci/run`` does this::

    TUSK_EMULATION_SANITIZE=address ASAN_OPTIONS=detect_leaks=0 \
        LD_PRELOAD="$(c++ -print-file-name=libasan.so) $(c++ -print-file-name=libstdc++.so)" \
        pytest tests/test_cuda_kernels.py tests/test_cuda_emulator.py

``TUSK_EMULATION_SCHEDULE=descending`` (or ``shuffled``) runs the blocks, and the threads of each
block, in another order (see ``runtime_api.h``); results must not change.
"""
from __future__ import annotations

import ctypes
import functools
import os
import pathlib
import shlex
import subprocess
import sys

import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
EMULATION = ROOT / "kernels" / "emulation"
SANITIZE = os.environ.get("TUSK_EMULATION_SANITIZE", "")
if SANITIZE not in ("", "address"):
    raise ValueError(f"TUSK_EMULATION_SANITIZE must be 'address' or empty, got {SANITIZE!r}")
BUILD = ROOT / "build" / ("cuda-emulation-asan" if SANITIZE else "cuda-emulation")
#: The torch.ops namespace (fixed by tests/emulated_cuda_library.cpp); the library file's name
#: differs per build so the two builds never share a ninja directory or a loaded module.
NAME = "tusk_cuda_emulation"

sys.path.insert(0, str(EMULATION))
from translate import translate  # noqa: E402

#: Orders of blocks, and of the threads of a block between synchronisation points (runtime_api.h).
ASCENDING, DESCENDING, SHUFFLED = 0, 1, 2
SCHEDULES = {"ascending": ASCENDING, "descending": DESCENDING, "shuffled": SHUFFLED}
#: ``TUSK_EMULATION_SCHEDULE=descending|shuffled`` runs every emulated test in that order.
DEFAULT_SCHEDULE = SCHEDULES[os.environ.get("TUSK_EMULATION_SCHEDULE", "ascending")]


def _compiler() -> list[str]:
    return shlex.split(os.environ.get("CXX", "c++"))


def _write_if_changed(path: pathlib.Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def _translated(cuda_sources: list[pathlib.Path]) -> list[str]:
    """Preprocess and translate each CUDA source into BUILD/translated/<name>.cpp."""
    out_dir = BUILD / "translated"
    out_dir.mkdir(parents=True, exist_ok=True)
    sources = []
    for cu in cuda_sources:
        preprocessed = subprocess.run(
            [*_compiler(), "-std=c++17", "-E", "-x", "c++", f"-I{EMULATION / 'include'}",
             f"-I{ROOT / 'kernels' / 'include'}", f"-I{ROOT / 'kernels'}", str(cu)],
            check=True, capture_output=True, text=True,
        ).stdout
        target = out_dir / f"{cu.stem}.cpp"
        _write_if_changed(target, translate(preprocessed, str(cu.relative_to(ROOT))))
        sources.append(str(target))
    return sources


@functools.cache
def load() -> str:
    """Build (if needed) and load the emulated CUDA ops; returns the shared library's path."""
    from torch.utils import cpp_extension

    glue = sorted(str(p) for p in (ROOT / "csrc").glob("*/*_cuda.cpp"))
    # The shipped kernels, plus probes with known defects for the emulator's own tests.
    cuda_sources = sorted((ROOT / "kernels").glob("*.cu")) + [ROOT / "tests" / "emulator_probes.cu"]
    sources = _translated(cuda_sources) + glue + [str(EMULATION / "runtime.cpp"),
                                              str(ROOT / "tests" / "emulated_cuda_library.cpp")]
    sanitize = ["-fsanitize=address", "-fno-omit-frame-pointer"] if SANITIZE else []
    return cpp_extension.load(
        name=NAME + ("_asan" if SANITIZE else ""),
        sources=sources,
        extra_include_paths=[str(ROOT / "csrc"), str(EMULATION / "include"), str(ROOT / "kernels" / "include")],
        extra_cflags=["-O1", "-DTUSK_CUDA_EMULATION", "-fvisibility=hidden", "-Wno-unknown-pragmas", *sanitize],
        extra_ldflags=sanitize,
        build_directory=str(BUILD),
        is_python_module=False,
        verbose=False,
    )


def ops():
    controls()  # loads the library and applies the default schedule
    return getattr(torch.ops, NAME)


@functools.cache
def controls() -> ctypes.CDLL:
    library = ctypes.CDLL(load())
    library.tusk_emulation_set_schedule.argtypes = [ctypes.c_int, ctypes.c_uint64]
    library.tusk_emulation_error_message.restype = ctypes.c_char_p
    library.tusk_emulation_launches.restype = ctypes.c_int64
    library.tusk_emulation_set_schedule(DEFAULT_SCHEDULE, 0)
    return library


def sanitizer_environment() -> dict[str, str]:
    """Environment for a process that loads the AddressSanitizer build (see the module docstring)."""
    runtimes = []
    for library in ("libasan.so", "libstdc++.so"):
        path = subprocess.run([*_compiler(), f"-print-file-name={library}"], check=True, capture_output=True,
                              text=True).stdout.strip()
        if not os.path.isabs(path):
            raise RuntimeError(f"the C++ compiler does not know where {library} is (install its AddressSanitizer runtime)")
        runtimes.append(path)
    return {**os.environ, "TUSK_EMULATION_SANITIZE": "address", "ASAN_OPTIONS": "detect_leaks=0",
            "LD_PRELOAD": " ".join(runtimes)}


def set_schedule(order: int, seed: int = 0) -> None:
    controls().tusk_emulation_set_schedule(order, seed)


def launches() -> int:
    return controls().tusk_emulation_launches()
