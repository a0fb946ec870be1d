"""The official scripts' counting (``*_official``) beside ours, on cases where they differ."""
import numpy as np
import pytest

from tusk.eval import evaluate
from tusk.eval.mnist_hard import mnist_hard_metrics
from tusk.eval.object_discovery import object_discovery_metrics
from tusk.eval.official import mnist_hard_official


def _boxes(xs, y=40.0, side=20.0):
    xs = np.asarray(xs, dtype=np.float64)
    return np.stack([xs - side / 2, np.full_like(xs, y - side / 2), xs + side / 2, np.full_like(xs, y + side / 2)], 1)


def _pred(xs, labels, valid, y=40.0):
    xy = np.stack([np.asarray(xs, float), np.full(len(xs), y)], 1)[None]
    return {"xy": xy, "labels": np.asarray(labels)[None], "valid": np.asarray(valid, bool)[None]}


def test_mnist_official_counts_every_keypoint_over_nine_digits():
    # digits 1, 2, 3 at x = 10, 40, 70; keypoint 1 sits on digit 2 but is not a valid peak,
    # keypoint 2 is 4 px off digit 3 (IoU 16/24), keypoint 3 is nowhere
    target = {"boxes": _boxes([10, 40, 70]), "labels": np.array([1, 2, 3])}
    pred = _pred([10, 40, 74, 200], labels=[0, 1, 0, 2], valid=[True, False, True, True])
    ours, _ = mnist_hard_metrics(pred, [target], num_prototypes=3)
    assert ours["detection_accuracy"] == pytest.approx(2 / 3)  # valid keypoints, over 3 digits
    assert ours["classification_accuracy"] == pytest.approx(1 / 2)  # Hungarian: prototype 0 -> one class
    official = mnist_hard_official(pred, [target], num_prototypes=3, image_width=80)
    assert official["matched_official"] == 3  # every keypoint is a prediction there
    assert official["detection_accuracy_official"] == pytest.approx(3 / 9)  # 9 digits per image
    # majority: prototype 0 -> class 1 (tie to the lowest), prototype 1 -> class 2
    assert official["classification_accuracy_official"] == pytest.approx(2 / 3)
    assert official["both_official"] == pytest.approx(2 / 9)


def test_mnist_official_matches_digits_in_order_and_consumes_predictions():
    # P overlaps A (IoU 0.6) and B (0.905), Q overlaps A only (0.55): digit A, visited first,
    # takes P, and B finds nothing left; a global greedy matching gives P-B and Q-A
    target = {"boxes": _boxes([0.0, 6.0]), "labels": np.array([4, 5])}
    pred = _pred([5.0, -5.8], labels=[0, 1], valid=[True, True])
    assert mnist_hard_metrics(pred, [target], num_prototypes=2)[0]["detection_accuracy"] == 1.0
    official = mnist_hard_official(pred, [target], num_prototypes=2, image_width=80, digits_per_image=2)
    assert official["matched_official"] == 1 and official["detection_accuracy_official"] == 0.5
    # the 20 px box scales with the image: at 160 px the same offsets overlap more
    wide = {"boxes": _boxes([0.0, 6.0], side=40.0), "labels": np.array([4, 5])}
    assert mnist_hard_official(pred, [wide], num_prototypes=2, image_width=160)["matched_official"] == 2


def test_evaluate_reports_both_protocols_for_mnist_hard():
    target = {"boxes": _boxes([10, 40, 70]), "labels": np.array([1, 2, 3]), "image": np.zeros((3, 80, 80))}
    pred = _pred([10, 40, 70], labels=[0, 1, 2], valid=[True, True, True])
    metrics = evaluate("mnist_hard", (pred, [target]), prototypes=np.eye(3))
    assert metrics["both"] == 1.0 and metrics["both_official"] == pytest.approx(3 / 9)
    with pytest.raises(ValueError, match="image_size is needed"):
        evaluate("mnist_hard", (pred, [{k: v for k, v in target.items() if k != "image"}]), prototypes=np.eye(3))


def _discovery_case():
    """8x8 image: object 0 = columns 0-3, object 1 = columns 4-7 of rows 0-5, rows 6-7 background.
    Keypoints 0 and 1 both cover object 0 with alpha 0.9; keypoint 2 (0.85) covers 2 pixels of
    object 1 and 2 background pixels (a share of exactly 0.5: not more than half)."""
    masks = np.zeros((2, 8, 8), bool)
    masks[0, :6, :4] = True
    masks[1, :6, 4:] = True
    alpha = np.zeros((1, 3, 8, 8), np.float32)
    alpha[0, 0, :6, :4] = 0.9
    alpha[0, 1, :6, :4] = 0.9
    alpha[0, 2, 5:7, 4:6] = 0.85
    target = {"masks": masks, "shape": np.array([0, 1]), "color": np.array([2, 3])}
    pred = {"xy": np.zeros((1, 3, 2)), "valid": np.ones((1, 3), bool), "labels": np.array([[0, 1, 2]]),
            "masks": alpha}
    return pred, [target]


def test_attribute_accuracy_official_ignores_unexplained_objects():
    pred, targets = _discovery_case()
    metrics, _ = object_discovery_metrics(pred, targets, num_prototypes=3)
    # ours, per object: object 1's pixels have alpha 0 everywhere -> segment 0 -> prototype 0,
    # which also carries object 0 and maps to shape 0: object 1 is wrong
    assert metrics["shape_accuracy"] == 0.5 and metrics["num_objects"] == 2
    # official, per keypoint: keypoints 0 and 1 explain object 0 (counted twice), keypoint 2
    # explains nothing, object 1 is ignored
    assert metrics["keypoints_official"] == 2
    assert metrics["shape_accuracy_official"] == 1.0 and metrics["color_accuracy_official"] == 1.0


def test_compact_masks_give_the_same_figures():
    pred, targets = _discovery_case()
    compact = {k: v for k, v in pred.items() if k != "masks"}
    compact["segments"] = pred["masks"].argmax(axis=1).astype(np.int16)
    compact["alpha_confident"] = pred["masks"] > 0.8
    full = object_discovery_metrics(pred, targets, num_prototypes=3)[0]
    assert object_discovery_metrics(compact, targets, num_prototypes=3)[0] == full
    compact["alpha_confident"] = compact["alpha_confident"][:, :2]
    with pytest.raises(ValueError, match=r"alpha_confident'\] must be \[N, K, H, W\]"):
        object_discovery_metrics(compact, targets, num_prototypes=3)
