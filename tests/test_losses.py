"""TUSK's losses on hand-built inputs."""
import math

import pytest
import torch
import torch.nn.functional as F

from tusk import ops
from tusk.losses import (
    PerceptualLoss, equivariance_loss, kmeans_loss, load_vgg16_trunk, mse_loss, prototype_sw_loss, vgg16_trunk,
)
from tusk.model.tps import TpsParams, random_warp_grid, warp


@pytest.fixture(autouse=True)
def _reference_ops():
    with ops.use_backend("reference"):
        yield


def test_kmeans_value_by_hand():
    # Two prototypes; distances 0 and 1 -> p = softmax(-20 * [0, 1]) -> loss = log(1 + e^-20).
    distances = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    expected = math.log1p(math.exp(-20.0))
    assert float(kmeans_loss(distances)) == pytest.approx(expected, rel=1e-6)
    # Equidistant: p = 1/M -> loss = log M.
    assert float(kmeans_loss(torch.full((3, 4), 0.5))) == pytest.approx(math.log(4), rel=1e-6)
    assert float(kmeans_loss(torch.full((3, 4), 0.5), temperature=1.0)) == pytest.approx(math.log(4), rel=1e-6)


def test_kmeans_pulls_towards_nearest_prototype():
    prototypes = F.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), dim=-1)
    descriptor = F.normalize(torch.tensor([[0.8, 0.6]]), dim=-1).requires_grad_()
    distances = (descriptor[:, None] - prototypes).pow(2).mean(-1)
    kmeans_loss(distances).backward()
    step = -descriptor.grad[0]  # gradient descent direction
    assert step[0] > 0 and step[1] < 0  # towards prototype 0, away from prototype 1


def test_kmeans_mask():
    distances = torch.tensor([[0.0, 1.0], [0.5, 0.5]])
    mask = torch.tensor([True, False])
    assert float(kmeans_loss(distances, mask=mask)) == pytest.approx(float(kmeans_loss(distances[:1])))
    assert float(kmeans_loss(distances, mask=torch.zeros(2, dtype=torch.bool))) == 0.0


def test_sw_loss_zero_when_descriptors_are_the_prototypes():
    prototypes = F.normalize(torch.randn(4, 8), dim=-1)
    descriptors = prototypes.repeat(3, 1)  # every prototype used equally, no noise
    loss = prototype_sw_loss(prototypes, descriptors, noise_std=0.0, smoothing=0.0,
                             generator=torch.Generator().manual_seed(0))
    assert float(loss) == pytest.approx(0.0, abs=1e-10)


def test_sw_loss_official_scale_and_gradients():
    """Equal to P x ops.sliced_wasserstein against the GMM samples; trains only the prototypes."""
    prototypes = F.normalize(torch.randn(5, 8), dim=-1).requires_grad_()
    descriptors = F.normalize(torch.randn(2, 6, 8), dim=-1).requires_grad_()
    loss = prototype_sw_loss(prototypes, descriptors, projections=50, generator=torch.Generator().manual_seed(1))
    gen = torch.Generator().manual_seed(1)
    flat = descriptors.detach().reshape(-1, 8)
    samples = ops.gmm_prototype_samples(prototypes, flat, generator=gen)
    expected = 50 * ops.sliced_wasserstein(flat, samples, projections=50, generator=gen)
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert prototypes.grad.abs().sum() > 0 and descriptors.grad is None


def test_sw_loss_moves_prototypes_to_the_descriptors():
    torch.manual_seed(0)
    centres = F.normalize(torch.randn(3, 4), dim=-1)
    descriptors = F.normalize(centres.repeat(20, 1) + 0.01 * torch.randn(60, 4), dim=-1)
    prototypes = torch.nn.Parameter(torch.randn(3, 4))
    optimizer = torch.optim.Adam([prototypes], lr=0.1, betas=(0.5, 0.999))
    losses = []
    for step in range(150):
        loss = prototype_sw_loss(F.normalize(prototypes, dim=-1), descriptors,
                                 generator=torch.Generator().manual_seed(step))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.1 * losses[0]
    nearest = torch.cdist(centres, F.normalize(prototypes.detach(), dim=-1)).min(dim=1).values
    assert nearest.max() < 0.2


def test_equivariance_loss_zero_for_equivariant_maps():
    maps = torch.rand(2, 4, 12, 12)
    params = TpsParams()
    grid = random_warp_grid(2, (16, 16), params, generator=torch.Generator().manual_seed(0))
    assert float(equivariance_loss(maps, warp(maps, grid, 2), grid, 2)) == pytest.approx(0.0, abs=1e-12)
    assert float(equivariance_loss(maps, maps.flip(-1), grid, 2)) > 1e-3


def test_mse():
    a, b = torch.zeros(1, 3, 2, 2), torch.full((1, 3, 2, 2), 0.5)
    assert float(mse_loss(a, b)) == pytest.approx(0.25)


def _save_fake_vgg(path, *, prefix="features.", extra=True):
    torch.manual_seed(0)
    trunk = vgg16_trunk()
    state = {prefix + k: v for k, v in trunk.state_dict().items()}
    if extra:  # layers past relu4_3 and the classifier, as in a full checkpoint
        state[prefix + "24.weight"] = torch.zeros(512, 512, 3, 3)
        state["classifier.0.weight"] = torch.zeros(4096, 25088 // 64)
    torch.save(state, path)
    return trunk


def test_vgg_loads_torchvision_layouts(tmp_path):
    trunk = _save_fake_vgg(tmp_path / "full.pth")
    loaded = load_vgg16_trunk(tmp_path / "full.pth")
    for (name, a), b in zip(trunk.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name
    assert [type(m).__name__ for m in loaded][:5] == ["Conv2d", "ReLU", "Conv2d", "ReLU", "MaxPool2d"]
    assert len(loaded) == 23
    _save_fake_vgg(tmp_path / "features.pth", prefix="", extra=False)
    load_vgg16_trunk(tmp_path / "features.pth")
    assert not any(p.requires_grad for p in loaded.parameters())


def test_vgg_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="VGG16 weights file not found"):
        load_vgg16_trunk(tmp_path / "missing.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable PyTorch state_dict"):
        load_vgg16_trunk(tmp_path / "junk.pth")
    torch.save({"0.weight": torch.zeros(64, 3, 3, 3)}, tmp_path / "partial.pth")
    with pytest.raises(ValueError, match="missing keys"):
        load_vgg16_trunk(tmp_path / "partial.pth")


def test_perceptual_loss(tmp_path):
    _save_fake_vgg(tmp_path / "vgg.pth")
    loss_fn = PerceptualLoss(tmp_path / "vgg.pth", input_size=64)
    images = torch.rand(2, 3, 20, 16)
    assert float(loss_fn(images, images)) == 0.0
    recon = torch.rand(2, 3, 20, 16, requires_grad=True)
    loss = loss_fn(recon, images)
    assert float(loss.detach()) > 0
    loss.backward()
    assert recon.grad.abs().sum() > 0
    assert all(p.grad is None for p in loss_fn.parameters())
    loss_fn.train()
    assert not loss_fn.training
