"""tusk: TUSK (Task-agnostic UnSupervised Keypoints) with fused keypoint ops for PyTorch.

- :mod:`tusk.ops`: the fused ops (detection, descriptor sampling, Gaussian splatting, alpha
  compositing, sliced Wasserstein, prototype GMM sampling), each with reference, C++, CUDA and
  Triton backends.
- :mod:`tusk.model`: the TUSK network; :mod:`tusk.losses`: its objectives;
  :mod:`tusk.training`: the iterative trainer; :mod:`tusk.config`: run configs (``tusk/configs``).
- :mod:`tusk.data`, :mod:`tusk.eval`: the paper's datasets and metrics.
- ``tusk`` command line: ``tusk train | eval | detect | data | info``.
"""
__version__ = "0.1.0"

from . import ops  # noqa: E402  (registers the ops with torch.library)

__all__ = ["ops", "__version__"]
