"""The Triton backend: every tusk op as a ``torch.library.triton_op`` in ``torch.ops.tusk_triton``.

Same argument names, types and outputs as the C++ schemas (``csrc/tusk_ops.cpp``), forward and
``<op>_backward``, with autograd registered on the forward ops. Kernels run on CUDA tensors, or
on CPU tensors when ``TRITON_INTERPRET=1`` was set before triton was imported (slow; for tests).

Importing this package raises ``ImportError`` when triton (or a torch with ``triton_op``) is
missing; :func:`tusk.ops._backend.probe_triton` turns that into "backend unavailable".
"""
import triton  # noqa: F401  (ImportError here = no Triton backend)

# Importing each module registers its forward and backward ops.
from . import (  # noqa: F401
    alpha_composite,
    detect_keypoints,
    gmm_prototype_samples,
    sample_descriptors,
    sliced_wasserstein,
    splat_gaussians,
)
