"""Build for tusk: the Python package plus the ``tusk._C`` extension.

The C++ CPU kernels (``csrc/``) are always compiled. The CUDA kernels (``kernels/*.cu``) and
their dispatcher glue (``csrc/**/*_cuda.cpp``) join the build automatically when the torch
being built against has CUDA and ``nvcc`` is found; set ``TUSK_BUILD_CUDA=0`` to skip them or
``TUSK_BUILD_CUDA=1`` to insist (the build then fails loudly if it cannot compile them), and
``TUSK_CUDA_ARCHS`` (default ``80;90``) to choose the GPU architectures.
"""
import glob
import os
import sys
import sysconfig

from setuptools import setup


def _import_target_torch():
    """Import the torch of the environment we are installing into.

    pip's build isolation hides that environment's site-packages. The extension has to be
    compiled against the very torch that will load it (the C++ ABI is not stable across
    releases), so instead of letting the isolated environment download another copy we append
    the target environment's library directories to ``sys.path`` and import torch from there.
    """
    try:
        import torch  # noqa: F401
    except ImportError:
        paths = sysconfig.get_paths()
        for key in ("purelib", "platlib"):
            if paths[key] not in sys.path:
                sys.path.append(paths[key])
        try:
            import torch  # noqa: F401
        except ImportError as err:
            raise SystemExit(
                "tusk compiles its C++ extension against the installed torch, but torch is not "
                "installed in this environment. Install torch first (e.g. "
                "`pip install torch==2.13.0`), then `pip install .` again."
            ) from err
    import torch

    return torch


torch = _import_target_torch()
from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension  # noqa: E402

ROOT = os.path.dirname(os.path.abspath(__file__))


def _want_cuda() -> bool:
    flag = os.environ.get("TUSK_BUILD_CUDA", "auto").lower()
    if flag in ("0", "false", "no"):
        return False
    available = torch.version.cuda is not None and CUDA_HOME is not None
    if flag in ("1", "true", "yes") and not available:
        raise SystemExit("TUSK_BUILD_CUDA=1 but torch has no CUDA or nvcc was not found")
    return available and bool(glob.glob(os.path.join(ROOT, "kernels", "*.cu")))


def _cuda_gencode_flags() -> list[str]:
    """Machine code for each architecture in ``TUSK_CUDA_ARCHS`` (default ``80;90``: Ampere and
    Hopper) plus PTX of the newest one, so later GPUs can JIT-compile it."""
    archs = [a.strip() for a in os.environ.get("TUSK_CUDA_ARCHS", "80;90").replace(",", ";").split(";")]
    archs = sorted({int(a) for a in archs if a})
    if not archs:
        raise SystemExit("TUSK_CUDA_ARCHS must list compute capabilities, e.g. '80;90'")
    flags = [f"-gencode=arch=compute_{a},code=sm_{a}" for a in archs]
    return flags + [f"-gencode=arch=compute_{archs[-1]},code=compute_{archs[-1]}"]


def _rel(paths):
    return sorted(os.path.relpath(p, ROOT) for p in paths)


def extensions():
    cpu_sources = _rel(
        p for p in glob.glob(os.path.join(ROOT, "csrc", "**", "*.cpp"), recursive=True)
        if not p.endswith("_cuda.cpp")
    )
    # -fopenmp matters: at::parallel_for is header-inlined `#pragma omp parallel`; without the
    # flag the pragma is ignored and every kernel runs on one thread.
    # -fno-trapping-math (clang's default): FP exceptions are never unmasked, so let GCC
    # if-convert float selects; without it the loops that call an inline polynomial exp (e.g.
    # alpha_composite's softmax) do not vectorise at all.
    cxx = ["-O3", "-fopenmp", "-fno-trapping-math", "-fdiagnostics-color=always"]
    include_dirs = [os.path.join(ROOT, "csrc"), os.path.join(ROOT, "kernels", "include")]
    if not _want_cuda():
        return [
            CppExtension(
                "tusk._C", cpu_sources, include_dirs=include_dirs, extra_compile_args={"cxx": cxx},
                extra_link_args=["-fopenmp"], py_limited_api=True,
            )
        ]
    cuda_sources = _rel(glob.glob(os.path.join(ROOT, "kernels", "*.cu")))
    cuda_sources += _rel(glob.glob(os.path.join(ROOT, "csrc", "**", "*_cuda.cpp"), recursive=True))
    # -O3 without --use_fast_math: the kernels' exp/division must stay within the float32
    # tolerances of tests/tolerances.py. -lineinfo costs nothing at run time and lets profilers
    # map SASS to source.
    nvcc = ["-O3", "-lineinfo"] + _cuda_gencode_flags()
    return [
        CUDAExtension(
            "tusk._C", cpu_sources + cuda_sources,
            include_dirs=include_dirs,
            extra_compile_args={"cxx": cxx + ["-DTUSK_WITH_CUDA"], "nvcc": nvcc},
            extra_link_args=["-fopenmp"], py_limited_api=True,
        )
    ]


setup(
    ext_modules=extensions(),
    cmdclass={"build_ext": BuildExtension},
    options={"bdist_wheel": {"py_limited_api": "cp310"}},
)
