"""The benchmark configurations: the paper's official settings plus a SuperPoint-like detector.

``window`` is both the NMS and the soft-argmax window (as in the official code, which uses one
kernel size for both); ``variance`` is the official Gaussian variance (0.05 px^2) for splatting.
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class Config:
    name: str
    batch: int
    height: int
    width: int
    channels: int
    k: int
    window: int
    prototypes: int
    variance: float = 0.05
    #: SuperPoint samples descriptors from a coarse map (1/8 resolution); None = full resolution.
    descriptor_stride: int = 1

    @property
    def descriptor_size(self) -> tuple[int, int]:
        return self.height // self.descriptor_stride, self.width // self.descriptor_stride


MNIST = Config("mnist", batch=32, height=80, width=80, channels=32, k=9, window=13, prototypes=10)
CLEVR = Config("clevr", batch=32, height=112, width=112, channels=32, k=6, window=21, prototypes=48)
TETROMINOES = Config("tetrominoes", batch=38, height=112, width=112, channels=32, k=3, window=27, prototypes=114)
SUPERPOINT = Config("superpoint", batch=8, height=480, width=640, channels=128, k=2048, window=5, prototypes=0, descriptor_stride=8)
#: SuperPoint-like detection with descriptors sampled from a full-resolution map (1.26 GB).
SUPERPOINT_FULL = Config("superpoint-fullres", batch=8, height=480, width=640, channels=128, k=2048, window=5, prototypes=0)

PAPER = (MNIST, CLEVR, TETROMINOES)
ALL = (MNIST, CLEVR, TETROMINOES, SUPERPOINT)
