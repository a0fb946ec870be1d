"""Plain-PyTorch definitions of every op: the specification the kernels are tested against.

Written for clarity, not speed (several materialise dense intermediates on purpose). Each
function takes already-validated arguments; the public wrappers in :mod:`tusk.ops` validate,
draw random numbers and then call one backend. Never change a reference to match a kernel.
"""
from .alpha_composite import alpha_composite
from .detect_keypoints import detect_keypoints
from .gmm_prototype_samples import gmm_prototype_samples
from .sample_descriptors import sample_descriptors
from .sliced_wasserstein import sliced_wasserstein
from .splat_gaussians import splat_gaussians

__all__ = [
    "alpha_composite",
    "detect_keypoints",
    "gmm_prototype_samples",
    "sample_descriptors",
    "sliced_wasserstein",
    "splat_gaussians",
]
