"""The paper's metrics on hand-computed cases."""
import json
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score

from tusk.eval import (box_iou, evaluate, fit_linear, foreground_ari, greedy_match, map_hungarian,
                       map_majority, regressor_input, swap_left_right)

# ---------------------------------------------------------------- matching primitives


def test_box_iou_hand_computed():
    a = np.array([[0, 0, 20, 20], [10, 0, 30, 20]], float)
    b = np.array([[0, 0, 20, 20], [0, 10, 20, 30], [100, 100, 120, 120]], float)
    iou = box_iou(a, b)
    np.testing.assert_allclose(iou, [[1, 200 / 600, 0], [200 / 600, 100 / 700, 0]])


def test_greedy_match_is_one_to_one_and_thresholded():
    iou = np.array([[0.9, 0.8], [0.85, 0.2], [0.49, 0.5]])
    # best pair (0,0) first; row 1 then has only col 1 at 0.2 < 0.5; row 2 takes col 1 at 0.5
    assert greedy_match(iou) == [(0, 0), (2, 1)]
    assert greedy_match(np.zeros((0, 3))) == []


def test_mappings_rectangular():
    counts = np.array([[5, 1, 0], [4, 0, 0], [0, 0, 7], [0, 0, 0]])  # M=4 prototypes, C=3 classes
    assert map_majority(counts).tolist() == [0, 0, 2, -1]  # many-to-one
    h = map_hungarian(counts)
    assert sorted(h[h >= 0].tolist()) == [0, 1, 2] and h[2] == 2 and (h == -1).sum() == 1
    # best bipartite total: p0->0 (5) + p1->1 (0) + p2->2 (7) = 12 = p1->0 (4) + p0->1 (1) + 7 = 12
    assert counts[np.flatnonzero(h >= 0), h[h >= 0]].sum() == 12


# ---------------------------------------------------------------- MNIST-Hard

def _mnist_targets(centers_list, labels_list, side=20.0):
    out = []
    for c, lab in zip(centers_list, labels_list):
        c = np.asarray(c, np.float32)
        out.append({"image": torch.zeros(3, 80, 80), "centers": torch.from_numpy(c),
                    "boxes": torch.from_numpy(np.concatenate([c - side / 2, c + side / 2], 1)),
                    "labels": torch.tensor(lab)})
    return out


def _mnist_case():
    centers = [[[15, 15], [45, 15], [15, 45]], [[60, 60], [30, 60], [60, 30]]]
    labels = [[0, 1, 2], [1, 1, 2]]
    return centers, labels


def test_mnist_hard_perfect():
    centers, labels = _mnist_case()
    targets = _mnist_targets(centers, labels)
    pred = {"xy": np.array(centers, float) + 1.0, "valid": np.ones((2, 3), bool),
            "labels": np.array([[7, 3, 5], [3, 3, 5]])}  # prototypes 7,3,5 <-> classes 0,1,2
    m = evaluate("mnist_hard", (pred, targets), prototypes=np.zeros((8, 4)))
    assert m["detection_accuracy"] == 1 and m["classification_accuracy"] == 1 and m["both"] == 1
    assert m["classification_accuracy_majority"] == 1 and m["num_prototypes"] == 8


def test_mnist_hard_shuffled_labels_and_missed_object():
    centers, labels = _mnist_case()
    targets = _mnist_targets(centers, labels)
    xy = np.array(centers, float)
    xy[1, 2] = [5, 75]  # the third object of image 1 is missed (IoU 0 with every box)
    pred = {"xy": xy, "valid": np.ones((2, 3), bool), "labels": np.array([[0, 0, 1], [0, 1, 1]])}
    m = evaluate("mnist_hard", (pred, targets))
    # 5 of 6 detected. matched (proto, class): (0,0) (0,1) (1,2) (0,1) (1,1)
    # counts: proto0 -> {0:1, 1:2}, proto1 -> {1:1, 2:1}
    assert m["detection_accuracy"] == pytest.approx(5 / 6)
    # Hungarian: proto0->1 (2) + proto1->2 (1) = 3 correct of 5 matched
    assert m["classification_accuracy"] == pytest.approx(3 / 5)
    assert m["both"] == pytest.approx(3 / 6)
    # majority: proto0->1 (2), proto1-> class 1 (tie 1/1 -> lowest class) = 3 of 5
    assert m["classification_accuracy_majority"] == pytest.approx(3 / 5)


def test_mnist_hard_more_prototypes_than_classes():
    centers = [[[15, 15], [45, 15], [15, 45], [45, 45]]]
    targets = _mnist_targets(centers, [[0, 0, 1, 1]])
    # two prototypes per class (modes of a class): majority maps both, Hungarian only one each
    pred = {"xy": np.array(centers, float), "valid": np.ones((1, 4), bool), "labels": np.array([[0, 1, 2, 3]])}
    m = evaluate("mnist_hard", (pred, targets))
    assert m["classification_accuracy_majority"] == 1.0
    assert m["classification_accuracy"] == 0.5
    assert m["num_prototypes"] == 4


def test_mnist_hard_invalid_keypoints_and_false_positives():
    centers, labels = _mnist_case()
    targets = _mnist_targets(centers, labels)
    xy = np.concatenate([np.array(centers, float), np.full((2, 2, 2), 70.0)], axis=1)  # K=5
    valid = np.array([[1, 1, 1, 1, 0], [1, 0, 1, 0, 0]], bool)
    pred = {"xy": xy, "valid": valid, "labels": np.array([[0, 1, 2, 0, 0], [1, 1, 2, 0, 0]])}
    m = evaluate("mnist_hard", (pred, targets))
    assert m["detection_accuracy"] == pytest.approx(5 / 6)  # image 1's second keypoint is invalid
    assert m["detection_precision"] == pytest.approx(5 / 6)  # 6 valid keypoints, one false positive
    assert m["num_detections"] == 6


def test_mnist_hard_writes_files(tmp_path):
    centers, labels = _mnist_case()
    targets = _mnist_targets(centers, labels)
    rng = np.random.default_rng(0)
    pred = {"xy": np.array(centers, float), "valid": np.ones((2, 3), bool),
            "labels": np.array([[0, 1, 2], [1, 1, 2]]), "descriptors": rng.normal(size=(2, 3, 8))}
    m = evaluate("mnist_hard", (pred, targets), prototypes=rng.normal(size=(3, 8)), out_dir=tmp_path)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["metrics"]["both"] == m["both"] == 1.0
    for name in ("detections.png", "confusion.png", "tsne.png"):
        assert (tmp_path / name).stat().st_size > 1000
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


def test_evaluate_input_errors():
    centers, labels = _mnist_case()
    targets = _mnist_targets(centers, labels)
    good = {"xy": np.zeros((2, 3, 2)), "valid": np.ones((2, 3), bool), "labels": np.zeros((2, 3), np.int64)}
    with pytest.raises(ValueError, match="task"):
        evaluate("segmentation", (good, targets))
    with pytest.raises(ValueError, match="3 targets|cover 2 images"):
        evaluate("mnist_hard", (good, targets + targets[:1]))
    with pytest.raises(ValueError, match="valid"):
        evaluate("mnist_hard", ({**good, "valid": np.ones((2, 4), bool)}, targets))
    with pytest.raises(TypeError, match="labels"):
        evaluate("mnist_hard", ({**good, "labels": np.zeros((2, 3))}, targets))
    with pytest.raises(ValueError, match="needs 'xy'"):
        evaluate("mnist_hard", ({"valid": good["valid"], "labels": good["labels"]}, targets))
    with pytest.raises(ValueError, match="train"):
        evaluate("landmarks", (good, [{"landmarks": torch.zeros(5, 2)}] * 2))


# ---------------------------------------------------------------- object discovery

def _square_masks(h=12, w=12):
    """Three disjoint objects on a 12x12 canvas."""
    masks = np.zeros((3, h, w), bool)
    masks[0, 0:4, 0:4] = True
    masks[1, 6:10, 0:5] = True
    masks[2, 2:6, 7:11] = True
    return masks


def _alpha_from_segments(segments, k):
    """Alpha logits whose argmax is ``segments``."""
    alpha = np.zeros((k,) + segments.shape)
    for j in range(k):
        alpha[j][segments == j] = 5.0
    return alpha


def test_foreground_ari_cases():
    masks = _square_masks()
    truth = np.zeros(masks.shape[1:], np.int64)
    for j in range(3):
        truth[masks[j]] = j + 1
    perfect = (truth + 2) % 4  # a relabelling, background anything
    assert foreground_ari(perfect, masks) == 1.0
    merged = np.where(truth == 2, 1, truth)  # objects 1 and 2 in one segment
    fg = masks.any(0)
    assert foreground_ari(merged, masks) == pytest.approx(adjusted_rand_score(truth[fg], merged[fg]))
    assert foreground_ari(merged, masks) < 1
    # single-object image: one true cluster
    single = masks[:1]
    assert foreground_ari(np.zeros((12, 12), np.int64), single) == 1.0  # kept in one segment
    split = np.zeros((12, 12), np.int64)
    split[0:2] = 1
    assert foreground_ari(split, single) == 0.0  # split in two
    assert math.isnan(foreground_ari(split, np.zeros((1, 12, 12), bool)))  # no foreground at all


def _od_targets():
    masks = _square_masks()
    return [{"image": torch.zeros(3, 12, 12), "masks": torch.from_numpy(masks),
             "centers": torch.tensor([[1.5, 1.5], [2.0, 7.5], [8.5, 3.5]]),
             "shape": torch.tensor([0, 1, 1]), "color": torch.tensor([2, 2, 0])}]


def test_object_discovery_perfect_and_single_object_images():
    targets = _od_targets()
    masks = targets[0]["masks"].numpy()
    segments = np.zeros((12, 12), np.int64) + 3  # background -> keypoint 3
    for j in range(3):
        segments[masks[j]] = j
    pred = {"xy": np.array([[[1.5, 1.5], [2, 7.5], [8.5, 3.5], [11, 11]]]), "valid": np.array([[1, 1, 1, 0]], bool),
            "labels": np.array([[4, 2, 3, 0]]), "masks": _alpha_from_segments(segments, 4)[None]}
    single = {"image": torch.zeros(3, 12, 12), "masks": torch.from_numpy(masks[:1]),
              "shape": torch.tensor([0]), "color": torch.tensor([2])}
    pred2 = {k: np.concatenate([v, v]) for k, v in pred.items()}
    m = evaluate("object_discovery", (pred2, targets + [single]))
    assert m["ari"] == 1.0 and m["ari_images"] == 2 and m["ari_skipped"] == 0
    assert m["shape_accuracy"] == 1.0 and m["color_accuracy"] == 1.0 and m["num_objects"] == 4
    assert "size_accuracy" not in m


def test_object_discovery_attribute_majority_and_missed_object():
    targets = _od_targets()
    masks = targets[0]["masks"].numpy()
    segments = np.full((12, 12), 2)
    segments[masks[0]] = 0
    segments[masks[1]] = 1  # object 2 is covered by segment 2
    segments[masks[2]] = 1  # ... no: object 2 is merged into segment 1
    pred = {"xy": np.zeros((1, 3, 2)), "valid": np.ones((1, 3), bool), "labels": np.array([[0, 1, 1]]),
            "masks": _alpha_from_segments(segments, 3)[None]}
    m = evaluate("object_discovery", (pred, targets))
    # objects -> prototypes: 0 -> p0, 1 -> p1, 2 -> p1. shapes (0,1,1): p0->0, p1->1: all right
    assert m["shape_accuracy"] == 1.0
    # colours (2,2,0): p0->2 right; p1 sees {2, 0} -> tie to colour 0: one of two right
    assert m["color_accuracy"] == pytest.approx(2 / 3)
    assert m["ari"] < 1.0


def test_object_discovery_without_masks_uses_nearest_keypoints():
    targets = _od_targets()
    pred = {"xy": np.array([[[8, 4], [1, 1], [2, 8]]], float), "valid": np.ones((1, 3), bool),
            "labels": np.array([[5, 3, 4]])}
    m = evaluate("object_discovery", (pred, targets))
    assert "ari" not in m and m["shape_accuracy"] == 1.0 and m["color_accuracy"] == 1.0
    with pytest.raises(ValueError, match="image size"):
        bad = {**pred, "masks": np.zeros((1, 3, 6, 6))}
        evaluate("object_discovery", (bad, targets))


# ---------------------------------------------------------------- landmarks

def test_regressor_input_fills_per_prototype_sorted_by_x():
    xy = np.array([[[5, 1], [2, 2], [9, 3], [7, 4]]], float)
    labels = np.array([[1, 1, 0, 1]])
    valid = np.array([[1, 1, 1, 0]], bool)
    out = regressor_input(xy, labels, valid, num_prototypes=3)
    assert out.shape == (1, 3, 4, 2)
    expected = np.zeros((3, 4, 2))
    expected[0, 0] = [9, 3]
    expected[1, 0] = [2, 2]  # prototype 1, sorted by x: x=2 then x=5; (7,4) is invalid
    expected[1, 1] = [5, 1]
    np.testing.assert_array_equal(out[0], expected)
    assert np.count_nonzero(out.any(-1)) == 3


def test_swap_left_right():
    # pairs (left, right): joints 0/1 and 2/3. Front-facing: right joint has the larger x.
    front = np.array([[0, 0], [10, 0], [0, 5], [10, 5]], float)
    back = front[[1, 0, 3, 2]]
    out = swap_left_right(np.stack([front, back]), np.array([[0, 1], [2, 3]]))
    np.testing.assert_array_equal(out[0], front)
    np.testing.assert_array_equal(out[1], front)


def _landmark_split(rng, n, k=4, m=3, t=5, size=40):
    """Keypoints with fixed prototypes per slot; landmarks an exact linear map of them."""
    xy = rng.uniform(0, size - 1, size=(n, k, 2))
    labels = np.tile(np.array([0, 1, 2, 2]), (n, 1))
    xy[:, 3, 0] = xy[:, 2, 0] + 1 + rng.uniform(0, 5, n)  # keep the x order within prototype 2
    valid = np.ones((n, k), bool)
    w = np.random.default_rng(123).normal(size=(m * k * 2, t * 2)) * 0.1
    lm = (regressor_input(xy, labels, valid, m).reshape(n, -1) @ w).reshape(n, t, 2)
    targets = [{"image": torch.zeros(3, size, size), "landmarks": torch.from_numpy(lm[i]).float()} for i in range(n)]
    return {"xy": xy, "valid": valid, "labels": labels}, targets, lm


def test_landmarks_exact_linear_map_has_zero_error():
    rng = np.random.default_rng(0)
    train = _landmark_split(rng, 60)
    test = _landmark_split(rng, 20)
    m = evaluate("landmarks", test[:2], train=train[:2], prototypes=np.zeros((3, 2)))
    assert m["landmark_error"] < 1e-5 and m["num_train"] == 60


def test_landmarks_error_normalisation_hand_computed():
    # one prototype, one keypoint; in training both landmarks sit on the keypoint, so the
    # fitted map copies the keypoint to both landmarks
    xy_train = np.array([[[1.0, 0.0]], [[0.0, 1.0]], [[2.0, 3.0]]])
    train_targets = [{"landmarks": torch.tensor(np.concatenate([p, p])), "image": torch.zeros(3, 8, 8)}
                     for p in xy_train]
    train_pred = {"xy": xy_train, "valid": np.ones((3, 1), bool), "labels": np.zeros((3, 1), np.int64)}
    # test image: keypoint (2, 2) -> both landmarks predicted at (2, 2); truth (0, 2) and (4, 2)
    test_targets = [{"landmarks": torch.tensor([[0.0, 2.0], [4.0, 2.0]]), "image": torch.zeros(3, 8, 8)}]
    test_pred = {"xy": np.array([[[2.0, 2.0]]]), "valid": np.ones((1, 1), bool), "labels": np.zeros((1, 1), np.int64)}
    m = evaluate("landmarks", (test_pred, test_targets), train=(train_pred, train_targets))
    assert m["landmark_error"] == pytest.approx(2.0 / 4.0)  # 2 px off each, inter-ocular 4 px
    assert m["landmark_error_percent"] == pytest.approx(50.0)
    m_img = evaluate("landmarks", (test_pred, test_targets), train=(train_pred, train_targets), normalize="image")
    assert m_img["landmark_error"] == pytest.approx(2.0 / 8.0)  # image width 8


def test_landmarks_h36m_swap_is_applied(tmp_path):
    # a subject seen from the back: ground truth left/right reversed; after the swap a
    # regressor that never sees the orientation fits exactly
    n = 30
    rng = np.random.default_rng(1)
    pairs = np.array([[0, 1], [2, 3], [4, 5]])

    def split(n):
        centre = rng.uniform(10, 30, size=(n, 1, 2))
        offsets = np.array([[-3, 0], [3, 0], [-3, 5], [3, 5], [-2, 9], [2, 9]], float)
        lm_front = centre + offsets
        back = rng.random(n) < 0.5
        lm = lm_front.copy()
        lm[back] = lm_front[back][:, [1, 0, 3, 2, 5, 4]]
        pred = {"xy": centre, "valid": np.ones((n, 1), bool), "labels": np.zeros((n, 1), np.int64)}
        targets = [{"image": torch.zeros(3, 40, 40), "landmarks": torch.from_numpy(lm[i]),
                    "swap_pairs": torch.from_numpy(pairs)} for i in range(n)]
        return pred, targets

    train, test = split(n), split(10)
    m = evaluate("landmarks", test, train=train, out_dir=tmp_path)
    # landmarks = centre + fixed offsets is not linear in the centre alone (no bias), but the
    # residual is the same for front and back subjects only after the swap
    train_noswap = (train[0], [{k: v for k, v in t.items() if k != "swap_pairs"} for t in train[1]])
    test_noswap = (test[0], [{k: v for k, v in t.items() if k != "swap_pairs"} for t in test[1]])
    m_noswap = evaluate("landmarks", test_noswap, train=train_noswap, normalize="image")
    assert m["landmark_error"] < m_noswap["landmark_error"]
    assert (tmp_path / "detections.png").exists()


def test_fit_linear_min_norm_for_unused_slots():
    x = np.zeros((4, 3))
    x[:, 0] = [1, 2, 3, 4]
    y = 2 * x[:, :1]
    w = fit_linear(x, y)
    np.testing.assert_allclose(w[:, 0], [2, 0, 0], atol=1e-12)
