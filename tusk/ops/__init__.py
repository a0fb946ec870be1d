"""The public fused ops. Each validates its arguments, then runs one backend.

Backends: ``reference`` (plain PyTorch, the specification), ``cpp`` (C++ CPU kernels),
``cuda`` (CUDA kernels), ``triton``; choose per call with ``backend=`` or globally with the
``TUSK_BACKEND`` environment variable (default ``auto``). See :mod:`tusk.ops._backend`.

Conventions: maps are ``[B, C, H, W]``; keypoints are ``(x, y)`` pixel coordinates with pixel
centres at integers (x in [0, W-1], y in [0, H-1]); a fixed K per image plus a ``valid [B, K]``
mask gives variable counts.
"""
from . import _backend
from ._backend import available_backends, describe, use_backend
from .alpha_composite import alpha_composite
from .coords import from_normalized, to_normalized
from .cpu_cache import cpu_cache_info, empty_cpu_cache
from .detect_keypoints import Detections, IndexedDetections, detect_keypoints
from .gmm_prototype_samples import gmm_prototype_samples
from .sample_descriptors import sample_descriptors
from .sliced_wasserstein import sliced_wasserstein
from .splat_gaussians import splat_gaussians

__all__ = [
    "Detections",
    "IndexedDetections",
    "alpha_composite",
    "available_backends",
    "cpu_cache_info",
    "describe",
    "detect_keypoints",
    "empty_cpu_cache",
    "from_normalized",
    "gmm_prototype_samples",
    "sample_descriptors",
    "sliced_wasserstein",
    "splat_gaussians",
    "to_normalized",
    "use_backend",
]

_backend.probe_triton()
