"""A TUSK training step built the way the paper's official code builds it, for comparison.

Same network (the package's U-Nets and prototypes), same pairs and loss weights; what differs
is how the keypoint parts are computed, following the structure of the official code:

- detection: max-pool NMS, top-K, then dense soft-argmax *convolutions* over the whole score
  map (three ``window x window`` convolutions of ``exp(s / 0.2)`` with zero padding, so
  off-image pixels count as ``exp(0)``) read at the selected pixels; confidence by a
  hand-written bilinear gather;
- descriptors: integer-index gather at the truncated coordinates (no bilinear sampling);
- decoding: dense Gaussians over the whole image ``[B, K, H, W]`` (normalised), multiplied
  into a dense ``[B, K, C, H, W]`` tensor and summed over K;
- prototype steps: each of the ``n_sw`` steps re-runs the encoder *with* autograd and
  back-propagates L_sw through it; the GMM sample counts come from a Python loop over the
  prototypes and the samples are concatenated prototype by prototype.

Written from the paper and the official code's behaviour (not copied), for benchmarking only.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from tusk.losses import equivariance_loss, kmeans_loss


def dense_detect(score_map: torch.Tensor, k: int, window: int, temperature: float = 0.2):
    """``score_map [B, 1, H, W]`` -> ``(xy [B, K, 2], confidence [B, K])``."""
    batch, _, height, width = score_map.shape
    pad = window // 2
    pooled = F.max_pool2d(score_map, window, stride=1, padding=pad)
    suppressed = pooled * (pooled == score_map)
    index = torch.topk(suppressed.reshape(batch, -1), k).indices  # [B, K]
    offsets = torch.arange(window, dtype=score_map.dtype, device=score_map.device) - pad
    x_kernel = offsets.view(1, 1, 1, -1).expand(1, 1, window, window)
    y_kernel = offsets.view(1, 1, -1, 1).expand(1, 1, window, window)
    ones = torch.ones(1, 1, window, window, dtype=score_map.dtype, device=score_map.device)
    weights = torch.exp(F.pad(score_map, (pad, pad, pad, pad)) / temperature)
    norm = F.conv2d(weights, ones)
    x_off = (F.conv2d(weights, x_kernel) / norm).reshape(batch, -1)
    y_off = (F.conv2d(weights, y_kernel) / norm).reshape(batch, -1)
    px, py = (index % width).to(score_map.dtype), (index // width).to(score_map.dtype)
    xy = torch.stack((px + torch.gather(x_off, 1, index), py + torch.gather(y_off, 1, index)), -1)
    # Confidence: bilinear interpolation from the four floor/ceil neighbours.
    x, y = xy[..., 0], xy[..., 1]
    x0, y0 = x.floor().clamp(0, width - 1), y.floor().clamp(0, height - 1)
    x1, y1 = x.ceil().clamp(0, width - 1), y.ceil().clamp(0, height - 1)
    flat = score_map.reshape(batch, -1)

    def at(xi, yi):
        return torch.gather(flat, 1, (yi * width + xi).long())

    confidence = (at(x0, y0) * (x1 - x) * (y1 - y) + at(x1, y0) * (x - x0) * (y1 - y)
                  + at(x0, y1) * (x1 - x) * (y - y0) + at(x1, y1) * (x - x0) * (y - y0))
    return xy, confidence


def integer_gather(features: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
    """``[B, K, C]`` features at the truncated integer coordinates."""
    index = xy.detach().long()
    rows = torch.arange(features.shape[0], device=features.device)[:, None]
    return features[rows, :, index[..., 1], index[..., 0]]


def dense_splat(xy: torch.Tensor, descriptors: torch.Tensor, confidence: torch.Tensor,
                size: tuple[int, int], variance: float) -> torch.Tensor:
    """``[B, C, H, W]`` via the dense ``[B, K, C, H, W]`` per-keypoint maps."""
    height, width = size
    ys = torch.arange(height, dtype=xy.dtype, device=xy.device).view(1, 1, -1, 1)
    xs = torch.arange(width, dtype=xy.dtype, device=xy.device).view(1, 1, 1, -1)
    d2 = (xs - xy[..., 0, None, None]) ** 2 + (ys - xy[..., 1, None, None]) ** 2
    gauss = torch.exp(-0.5 * d2 / variance)
    gauss = gauss / gauss.sum(dim=(-2, -1), keepdim=True) * confidence[..., None, None]
    per_keypoint = descriptors[..., None, None] * gauss[:, :, None]  # [B, K, C, H, W]
    return per_keypoint.sum(dim=1)


def loop_gmm_samples(prototypes: torch.Tensor, features: torch.Tensor, noise_std: float = 0.02,
                     smoothing: float = 0.01) -> torch.Tensor:
    """GMM samples with a Python loop over the prototypes (official structure)."""
    m = prototypes.shape[0]
    n = features.shape[0]
    with torch.no_grad():
        nearest = torch.cdist(features, prototypes).argmin(dim=1)
        counts = torch.zeros(m)
        spread = torch.zeros(m)
        for j in range(m):
            members = nearest == j
            counts[j] = members.sum()
            spread[j] = ((features[members] - prototypes[j]) ** 2).mean() if counts[j] > 0 else 1.0
        share = counts + counts.sum() * (smoothing + spread.var(unbiased=False))
        quota = (share / share.sum() * n).long()
        quota[-1] += n - quota.sum()
    samples = torch.zeros(0, prototypes.shape[1], dtype=prototypes.dtype)
    for j in range(m):
        samples = torch.cat((samples, prototypes[j:j + 1].repeat(int(quota[j]), 1)))
    samples = samples + torch.randn(n, prototypes.shape[1]) * noise_std
    return F.normalize(samples, dim=1)


def official_sw(prototypes: torch.Tensor, features: torch.Tensor, projections: int = 100) -> torch.Tensor:
    samples = loop_gmm_samples(prototypes, features)
    theta = F.normalize(torch.randn(features.shape[1], projections), dim=0)
    a = torch.sort(features @ theta, dim=0).values
    b = torch.sort(samples @ theta, dim=0).values
    return (a - b).pow(2).sum(dim=1).mean()


def official_forward(model, images: torch.Tensor):
    cfg = model.config
    features, heatmap = model.encoder(images)
    score_map = torch.sigmoid(heatmap)
    xy, confidence = dense_detect(score_map, cfg.keypoints, cfg.window, cfg.temperature)
    descriptors = F.normalize(integer_gather(features, xy), dim=-1)
    return features, score_map, xy, confidence, descriptors


def official_step(model, optimizer, prototype_optimizer, pairs, loss_config, sw_steps: int) -> None:
    """One network step plus ``sw_steps`` prototype steps, official structure."""
    images = torch.cat((pairs.images, pairs.warped))
    half = pairs.images.shape[0]
    size = tuple(images.shape[-2:])
    features, score_map, xy, confidence, descriptors = official_forward(model, images)
    prototypes = F.normalize(model.prototypes, dim=1)
    distances = (descriptors[..., None, :] - prototypes).pow(2).mean(-1)
    kmeans = kmeans_loss(distances, temperature=loss_config.kmeans_temperature)
    splat = dense_splat(xy, descriptors, confidence, size, model.config.variance)
    reconstruction = torch.sigmoid(model.decoder(splat))
    loss = (loss_config.recon_weight * F.mse_loss(reconstruction, images)
            + loss_config.kmeans_weight * kmeans
            + loss_config.eqv_heatmap_weight * equivariance_loss(score_map[:half], score_map[half:], pairs.grid, pairs.pad)
            + loss_config.eqv_feature_weight * equivariance_loss(features[:half], features[half:], pairs.grid, pairs.pad))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    for _ in range(sw_steps):
        descriptors = official_forward(model, images)[-1]
        prototypes = F.normalize(model.prototypes, dim=1)
        sw = official_sw(prototypes, descriptors.reshape(-1, descriptors.shape[-1]))
        prototype_optimizer.zero_grad()
        sw.backward()
        prototype_optimizer.step()
