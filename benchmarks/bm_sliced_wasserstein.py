"""TUSK's prototype step: GMM samples from the prototypes, then their sliced Wasserstein distance
to the descriptors, with the gradient to the prototypes (as in the paper's prototype update).

Implementations:

- ``tusk-cpp`` / ``reference``: ``gmm_prototype_samples`` + ``sliced_wasserstein`` on that backend.
- ``official-loop``: the official code's way (a Python loop over prototypes for the shares and
  spreads, samples built by repeat + cat, ``randn`` noise, ``torch.sort`` of the projections),
  re-written here. Its loss is P times ours; the cost is what matters.
- ``pot``: POT's ``ot.sliced_wasserstein_distance`` (which returns the square root of ours) on
  samples from tusk's C++ sampler, so the row isolates the distance; present when POT imports.
"""
import pytest
import torch
import torch.nn.functional as F

from configs import CLEVR, MNIST, TETROMINOES
from tusk.ops import gmm_prototype_samples, sliced_wasserstein

PROJECTIONS = 100
TARGETS_MS = {"mnist": 0.5}

try:
    import ot
except ImportError:  # POT is the optional `bench` extra
    ot = None


def tusk_step(backend):
    def step(prototypes, descriptors):
        samples = gmm_prototype_samples(prototypes, descriptors, backend=backend)
        return sliced_wasserstein(descriptors.reshape(samples.shape), samples, projections=PROJECTIONS, backend=backend)

    return step


def official_loop_step(prototypes, descriptors):
    """The official sampler and loss, written out: per-prototype loop, repeat + cat, sort."""
    count, channels = prototypes.shape
    features = descriptors.reshape(-1, channels)
    points = features.shape[0]
    with torch.no_grad():
        nearest = ((prototypes[None] - features[:, None]) ** 2).sum(-1).argmin(1)
        ratio = torch.zeros(count)
        spread = torch.zeros(count)
        for m in range(count):
            members = nearest == m
            ratio[m] = members.sum()
            spread[m] = ((features[members] - prototypes[m]) ** 2).mean() if ratio[m] != 0 else 1.0
        ratio = ratio + ratio.sum() * (0.01 + ((spread - spread.mean()) ** 2).mean())
        counts = (ratio / ratio.sum() * points).long()
        counts[-1] += points - counts.sum()
    samples = torch.zeros(0, channels)
    for m, k in enumerate(counts.tolist()):
        samples = torch.cat([samples, prototypes[[m]].repeat(k, 1)])
    samples = samples + torch.randn(points, channels) / 50
    samples = samples / samples.norm(dim=1, keepdim=True)
    theta = F.normalize(torch.randn(channels, PROJECTIONS), dim=0)
    sorted_features = torch.sort(features @ theta, dim=0).values
    sorted_samples = torch.sort(samples @ theta, dim=0).values
    return ((sorted_samples - sorted_features) ** 2).sum(1).mean()


def pot_step(prototypes, descriptors):
    samples = gmm_prototype_samples(prototypes, descriptors, backend="cpp")
    return ot.sliced_wasserstein_distance(descriptors.reshape(samples.shape), samples, n_projections=PROJECTIONS)


IMPLS = {
    "tusk-cpp": tusk_step("cpp"),
    "reference": tusk_step("reference"),
    "official-loop": official_loop_step,
}
if ot is not None:
    IMPLS["pot"] = pot_step


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("pass_", ["fwd", "fwd+bwd"])
@pytest.mark.parametrize("cfg", [MNIST, CLEVR, TETROMINOES], ids=lambda c: c.name)
def test_prototype_step(record, cfg, pass_, impl):
    descriptors = F.normalize(torch.randn(cfg.batch, cfg.k, cfg.channels), dim=-1)
    prototypes = F.normalize(torch.randn(cfg.prototypes, cfg.channels), dim=-1)
    prototypes.requires_grad_(pass_ != "fwd")
    fn = IMPLS[impl]

    if pass_ == "fwd":
        def step():
            with torch.no_grad():
                fn(prototypes, descriptors)
    else:
        def step():
            torch.autograd.grad(fn(prototypes, descriptors), prototypes)

    record(step, op="sliced_wasserstein+gmm", config=cfg.name, pass_=pass_, impl=impl,
           target_ms=TARGETS_MS.get(cfg.name) if pass_ == "fwd+bwd" and impl == "tusk-cpp" else None)
