"""Per-step random streams: every random draw of step ``s`` comes from ``(seed, s, stream)``.

Nothing in a training step touches the global RNGs, so a step can be replayed exactly (the op
check re-runs it on the reference ops) and a resumed run needs no generator state.
"""
from __future__ import annotations

import numpy as np
import torch

STREAMS = {"pairs": 1, "prototypes": 2}


def step_generator(seed: int, step: int, stream: str) -> torch.Generator:
    """A CPU ``torch.Generator`` for ``stream`` (``"pairs"`` or ``"prototypes"``) of ``step``."""
    words = np.random.SeedSequence([seed, step, STREAMS[stream]]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(words[0]) << 32 | int(words[1]))
