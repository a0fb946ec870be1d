"""VGG16 convolutional trunk for the perceptual loss, loaded from a local weights file.

The layer layout (and so the ``state_dict`` keys ``"0.weight"``, ``"2.weight"``, ...) matches
``torchvision.models.vgg16().features``, so a standard ImageNet VGG16 checkpoint works as is:
either the whole model's ``state_dict`` (keys ``"features.0.weight"``, ...; the classifier is
ignored) or that of ``.features`` alone. Nothing is downloaded; torchvision is not needed.
"""
from __future__ import annotations

import os

import torch
from torch import nn

#: VGG16 configuration "D" up to relu4_3 (index 22): channels, "M" = max-pool.
_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512)
#: Slices of ``features`` whose outputs the perceptual loss compares (relu1_2 .. relu4_3).
BLOCKS = ((0, 4), (4, 9), (9, 16), (16, 23))


def vgg16_trunk() -> nn.Sequential:
    """Layers 0..22 of torchvision's ``vgg16().features`` (random weights)."""
    layers: list[nn.Module] = []
    channels = 3
    for item in _LAYOUT:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(channels, item, kernel_size=3, padding=1), nn.ReLU(inplace=False)]
            channels = item
    return nn.Sequential(*layers)


def load_vgg16_trunk(path: str | os.PathLike) -> nn.Sequential:
    """A frozen, eval-mode :func:`vgg16_trunk` with weights read from ``path``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not a readable VGG16 ``state_dict`` (names the missing keys).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(2, f"VGG16 weights file not found: {path}", path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle / zip errors from a corrupt or foreign file
        raise ValueError(f"{path}: not a readable PyTorch state_dict ({err})") from err
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state_dict (a dict of tensors), got {type(state).__name__}")
    trunk = vgg16_trunk()
    wanted = trunk.state_dict().keys()
    prefix = "features." if any(k.startswith("features.") for k in state) else ""
    picked = {k: state[prefix + k] for k in wanted if prefix + k in state}
    missing = [prefix + k for k in wanted if prefix + k not in state]
    if missing:
        raise ValueError(f"{path}: not a VGG16 state_dict, missing keys {missing[:4]}{'...' if len(missing) > 4 else ''}")
    try:
        trunk.load_state_dict(picked)
    except RuntimeError as err:
        raise ValueError(f"{path}: VGG16 weights have the wrong shapes ({err})") from err
    trunk.eval()
    for p in trunk.parameters():
        p.requires_grad_(False)
    return trunk
