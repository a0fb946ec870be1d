"""Pictures of a run: detections coloured by prototype, reconstructions, alpha masks and the
prototypes rendered on their own. Everything returns ``uint8 [H, W, 3]`` arrays (for PNG files
and TensorBoard alike)."""
from __future__ import annotations

import os

import numpy as np
import torch
from PIL import Image, ImageDraw

GAP = 2  # pixels between tiles


def prototype_colours(count: int) -> np.ndarray:
    """``[count, 3]`` uint8 distinct colours (tab20 up to 20 prototypes, a rainbow beyond)."""
    from matplotlib import colormaps

    if count <= 20:
        colours = colormaps["tab20"](np.arange(count) % 20)[:, :3]
    else:
        colours = colormaps["gist_rainbow"](np.linspace(0, 1, count, endpoint=False))[:, :3]
    return (colours * 255).round().astype(np.uint8)


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """``[3, H, W]`` or ``[1, H, W]`` float in [0, 1] -> ``[H, W, 3]`` uint8."""
    image = image.detach().float().cpu().clamp(0, 1)
    if image.shape[0] == 1:
        image = image.expand(3, -1, -1)
    return (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def upscale(image: np.ndarray, scale: int) -> np.ndarray:
    return image.repeat(scale, axis=0).repeat(scale, axis=1) if scale > 1 else image


def draw_keypoints(image: np.ndarray, xy: np.ndarray, labels: np.ndarray, valid: np.ndarray,
                   colours: np.ndarray, scale: int) -> np.ndarray:
    """Circles at ``xy`` (pixel coords of ``image``) in their prototype's colour on an upscaled
    copy; invalid slots get a thin grey ring."""
    canvas = Image.fromarray(upscale(image, scale))
    draw = ImageDraw.Draw(canvas)
    radius = max(3, 2 * scale)
    for (x, y), label, ok in zip(xy, labels, valid):
        cx, cy = (x + 0.5) * scale, (y + 0.5) * scale
        box = (cx - radius, cy - radius, cx + radius, cy + radius)
        if ok:
            draw.ellipse(box, outline=tuple(int(c) for c in colours[label]), width=max(2, scale // 2))
            draw.point((cx, cy), fill=(255, 255, 255))
        else:
            draw.ellipse(box, outline=(128, 128, 128), width=1)
    return np.asarray(canvas)


def tile(rows: list[list[np.ndarray]], background: int = 255) -> np.ndarray:
    """Grid of equally sized ``[h, w, 3]`` tiles separated by ``GAP`` pixels."""
    h, w = rows[0][0].shape[:2]
    cols = max(len(r) for r in rows)
    out = np.full((len(rows) * (h + GAP) - GAP, cols * (w + GAP) - GAP, 3), background, dtype=np.uint8)
    for i, row in enumerate(rows):
        for j, item in enumerate(row):
            out[i * (h + GAP):i * (h + GAP) + h, j * (w + GAP):j * (w + GAP) + w] = item
    return out


def auto_scale(size: tuple[int, int], target: int = 160) -> int:
    return max(1, target // max(size))


def run_panel(images: torch.Tensor, output, colours: np.ndarray, count: int = 8) -> np.ndarray:
    """Columns = images; rows = input with detections, reconstruction, score map, then (alpha
    blending) each keypoint's alpha mask tinted with its prototype colour."""
    count = min(count, images.shape[0])
    scale = auto_scale(tuple(images.shape[-2:]))
    xy = output.xy.detach().cpu().numpy()
    labels = output.labels.detach().cpu().numpy()
    valid = output.valid.detach().cpu().numpy()
    score = output.score_map.detach().cpu()
    rows = [
        [draw_keypoints(to_uint8(images[i]), xy[i], labels[i], valid[i], colours, scale) for i in range(count)],
        [upscale(to_uint8(output.reconstruction[i]), scale) for i in range(count)],
        [upscale(heat_colours(score[i, 0]), scale) for i in range(count)],
    ]
    if output.alpha is not None:
        alpha = output.alpha.detach().cpu()
        for k in range(alpha.shape[1]):
            rows.append([upscale(tint(alpha[i, k, 0], colours[labels[i, k]]), scale) for i in range(count)])
    return tile(rows)


def heat_colours(values: torch.Tensor) -> np.ndarray:
    """``[H, W]`` in [0, 1] -> ``[H, W, 3]`` uint8 through the viridis colour map."""
    from matplotlib import colormaps

    rgb = colormaps["viridis"](values.clamp(0, 1).numpy())[..., :3]
    return (rgb * 255).round().astype(np.uint8)


def tint(mask: torch.Tensor, colour: np.ndarray) -> np.ndarray:
    """``[H, W]`` in [0, 1] -> that mask painted in ``colour`` on black."""
    return (mask.clamp(0, 1).numpy()[..., None] * colour[None, None, :]).round().astype(np.uint8)


def prototype_sheet(renders: torch.Tensor, colours: np.ndarray, per_row: int = 16) -> np.ndarray:
    """Rendered prototypes ``[M, 3, H, W]`` in a grid, each framed in its colour."""
    scale = auto_scale(tuple(renders.shape[-2:]), target=64)
    tiles = []
    for m in range(renders.shape[0]):
        image = upscale(to_uint8(renders[m]), scale)
        framed = np.empty((image.shape[0] + 4, image.shape[1] + 4, 3), dtype=np.uint8)
        framed[:] = colours[m]
        framed[2:-2, 2:-2] = image
        tiles.append(framed)
    rows = [tiles[i:i + per_row] for i in range(0, len(tiles), per_row)]
    return tile(rows)


def save_png(image: np.ndarray, path: str | os.PathLike) -> None:
    """Write ``[H, W, 3]`` uint8 to ``path`` atomically."""
    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}.png"
    Image.fromarray(image).save(tmp)
    os.replace(tmp, path)
