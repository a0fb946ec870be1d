"""The paper's evaluation metrics.

- :func:`evaluate`: one call per task (``"mnist_hard"``, ``"object_discovery"``,
  ``"landmarks"``), returning a flat dict of floats and optionally writing ``metrics.json``
  and PNG figures.
- Building blocks: :func:`box_iou`, :func:`greedy_match`, :func:`map_hungarian`,
  :func:`map_majority`, :func:`foreground_ari`, :func:`regressor_input`, :func:`fit_linear`,
  :func:`swap_left_right`.
"""
from .evaluate import TASKS, evaluate
from .landmarks import fit_linear, landmark_metrics, regressor_input, swap_left_right
from .matching import box_iou, boxes_around, confusion, greedy_match, map_hungarian, map_majority
from .mnist_hard import mnist_hard_metrics
from .object_discovery import foreground_ari, object_discovery_metrics

__all__ = [
    "TASKS", "box_iou", "boxes_around", "confusion", "evaluate", "fit_linear", "foreground_ari",
    "greedy_match", "landmark_metrics", "map_hungarian", "map_majority", "mnist_hard_metrics",
    "object_discovery_metrics", "regressor_input", "swap_left_right",
]
