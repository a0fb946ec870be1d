"""PNG figures for :func:`tusk.eval.evaluate`: detections, confusion matrix, t-SNE.

matplotlib runs with the non-interactive Agg backend (no display needed).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ._inputs import as_numpy


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _image_hwc(item) -> np.ndarray:
    return np.clip(as_numpy(item["image"]).transpose(1, 2, 0), 0, 1)


def plot_detections(path: Path, targets, pred: dict, *, class_of_prototype=None, regressed=None,
                    box_side=None, max_images: int = 8, columns: int = 4) -> Path:
    """A grid of images with the valid keypoints (labelled by prototype, or by mapped class;
    with ``box_side``, inside their fixed-size detection boxes), ground-truth centres or
    landmarks as green crosses, and regressed landmarks as red circles."""
    from matplotlib.patches import Rectangle

    plt = _pyplot()
    n = min(len(targets), max_images)
    cols = max(1, min(columns, n))
    rows = max(1, -(-n // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.2 * rows), squeeze=False)
    axes = axes.ravel()
    cmap = plt.get_cmap("tab20")
    for j in range(n):
        ax = axes[j]
        ax.imshow(_image_hwc(targets[j]), interpolation="nearest")
        gt = targets[j].get("centers", targets[j].get("landmarks"))
        if gt is not None:
            g = as_numpy(gt).reshape(-1, 2)
            ax.scatter(g[:, 0], g[:, 1], marker="x", c="lime", s=18, linewidths=1)
        keep = pred["valid"][j]
        xy, labels = pred["xy"][j][keep], pred["labels"][j][keep]
        ax.scatter(xy[:, 0], xy[:, 1], c=[cmap(int(lab) % 20) for lab in labels], s=14)
        for (x, y), lab in zip(xy, labels):
            text = class_of_prototype[lab] if class_of_prototype is not None else lab
            if box_side is not None:
                half = box_side / 2
                ax.add_patch(Rectangle((x - half, y - half), box_side, box_side, fill=False,
                                       edgecolor=cmap(int(lab) % 20), linewidth=1))
                ax.text(x - half, y - half - 0.5, str(text), color="yellow", fontsize=9)
            else:
                ax.text(x + 1.5, y - 1.5, str(text), color="yellow", fontsize=9)
        if regressed is not None:
            r = regressed[j]
            ax.scatter(r[:, 0], r[:, 1], facecolors="none", edgecolors="red", s=30, linewidths=1)
        ax.set_axis_off()
    for j in range(n, len(axes)):
        axes[j].set_axis_off()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_confusion(path: Path, counts: np.ndarray, *, xlabel: str = "class", ylabel: str = "prototype") -> Path:
    plt = _pyplot()
    counts = np.asarray(counts)
    fig, ax = plt.subplots(figsize=(1 + 0.35 * counts.shape[1], 1 + 0.25 * counts.shape[0]))
    ax.imshow(counts, cmap="viridis", aspect="auto")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_xticks(range(counts.shape[1]))
    if counts.shape[0] <= 40:
        ax.set_yticks(range(counts.shape[0]))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_tsne(path: Path, descriptors: np.ndarray, colors: np.ndarray, prototypes=None, *,
              max_points: int = 2000, seed: int = 0) -> Path:
    """t-SNE of ``descriptors [P, C]`` coloured by ``colors [P]`` (ground-truth class, or -1),
    with ``prototypes [M, C]`` as black crosses (embedded jointly)."""
    from sklearn.manifold import TSNE

    plt = _pyplot()
    rng = np.random.default_rng(seed)
    descriptors = np.asarray(descriptors, dtype=np.float64)
    if len(descriptors) > max_points:
        pick = rng.choice(len(descriptors), max_points, replace=False)
        descriptors, colors = descriptors[pick], np.asarray(colors)[pick]
    protos = np.zeros((0, descriptors.shape[1])) if prototypes is None else np.asarray(prototypes, np.float64)
    points = np.concatenate([descriptors, protos])
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    if len(points) >= 3:
        perplexity = float(min(30.0, (len(points) - 1) / 3))
        emb = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(points)
        d, p = emb[:len(descriptors)], emb[len(descriptors):]
        ax.scatter(d[:, 0], d[:, 1], c=np.asarray(colors), cmap="tab10", s=4)
        if len(p):
            ax.scatter(p[:, 0], p[:, 1], marker="x", c="black", s=40)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
