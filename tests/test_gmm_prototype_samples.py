"""gmm_prototype_samples: every backend against the reference, counts, gradients, edge cases."""
import pytest
import torch
import torch.nn.functional as F

from gradients import gradcheck
from tolerances import assert_close
from tusk.ops import gmm_prototype_samples, reference
from tusk.ops.reference.gmm_prototype_samples import prototype_counts


def sample_inputs(device, dtype):
    """``(prototypes, features, noise_std, smoothing)`` cases: TUSK's three datasets (unit
    vectors), M = 1, M > N, C = 1, N = 1, several leading dims, features sitting on prototypes."""
    def unit(*shape):
        return F.normalize(torch.randn(*shape, device=device, dtype=dtype), dim=-1)

    protos = unit(5, 4)
    on_prototypes = protos[torch.tensor([0, 0, 3, 3, 3, 1], device=device)]
    return [
        (unit(10, 32), unit(32, 9, 32), 0.02, 0.01),   # MNIST: N = 288, M = 10
        (unit(48, 32), unit(32, 6, 32), 0.02, 0.01),   # CLEVR: N = 192, M = 48
        (unit(114, 32), unit(38, 3, 32), 0.02, 0.01),  # Tetrominoes: N = M = 114
        (unit(1, 6), unit(13, 6), 0.05, 0.01),         # M = 1
        (unit(9, 3), unit(3, 3), 0.02, 0.01),          # M > N
        (torch.randn(4, 1, device=device, dtype=dtype), torch.randn(17, 1, device=device, dtype=dtype), 0.1, 0.2),
        (unit(3, 5), unit(1, 5), 0.02, 0.01),          # N = 1
        (unit(6, 4), unit(2, 3, 5, 4), 0.02, 0.0),     # several leading dims, no smoothing
        (protos, on_prototypes, 0.0, 0.05),            # zero spreads, no noise
    ]


def _draw(prototypes, features, noise_std, smoothing, backend, seed=0, **kwargs):
    generator = torch.Generator(prototypes.device).manual_seed(seed)
    return gmm_prototype_samples(prototypes, features, noise_std=noise_std, smoothing=smoothing,
                                 generator=generator, backend=backend, **kwargs)


def _namespace(backend):
    return torch.ops.tusk_triton if backend == "triton" else torch.ops.tusk


def _op_assignment(backend, prototypes, features, smoothing):
    """The compiled op's assignment (prototype index of each sample)."""
    flat = features.reshape(-1, prototypes.shape[1])
    return _namespace(backend).gmm_prototype_samples(prototypes, flat, torch.zeros_like(flat), smoothing)[1]


class TestGmmPrototypeSamples:
    def test_smoke(self, target, dtype):
        device, backend = target
        prototypes = torch.eye(3, device=device, dtype=dtype)
        samples = gmm_prototype_samples(prototypes, prototypes.repeat(2, 1), noise_std=0.0, backend=backend)
        assert samples.shape == (6, 3) and samples.dtype == dtype and samples.device.type == device
        assert_close(samples, torch.eye(3, dtype=dtype).repeat_interleave(2, dim=0))

    def test_forward_and_backward_match_reference(self, kernel_target, dtype):
        device, backend = kernel_target
        for prototypes, features, noise_std, smoothing in sample_inputs(device, dtype):
            prototypes = prototypes.clone().requires_grad_(True)
            expected = _draw(prototypes, features, noise_std, smoothing, "reference")
            actual = _draw(prototypes, features, noise_std, smoothing, backend)
            label = f"M={prototypes.shape[0]} features {tuple(features.shape)}"
            assert_close(actual, expected, msg=f"forward {label}")
            cotangent = torch.randn_like(expected)
            assert_close(torch.autograd.grad(actual, prototypes, cotangent)[0],
                         torch.autograd.grad(expected, prototypes, cotangent)[0], msg=f"grad {label}")

    def test_counts_equal_reference_exactly(self, kernel_target, dtype):
        device, backend = kernel_target
        for prototypes, features, _, smoothing in sample_inputs(device, dtype):
            assignment = _op_assignment(backend, prototypes, features, smoothing)
            flat = features.reshape(-1, prototypes.shape[1])
            expected = prototype_counts(prototypes, flat, smoothing)
            assert torch.equal(torch.bincount(assignment, minlength=prototypes.shape[0]), expected)
            assert torch.equal(assignment, torch.sort(assignment).values)  # grouped by prototype
        # Many small random problems, features near the prototypes (uneven clusters and spreads).
        generator = torch.Generator(device).manual_seed(0)
        for trial in range(150):
            count, channels = 1 + trial % 7, 1 + trial % 3
            points = 1 + (trial * 7) % 23
            prototypes = torch.randn(count, channels, generator=generator, device=device).to(dtype)
            pick = torch.randint(count, (points,), generator=generator, device=device)
            spread = 0.3 * torch.rand(count, 1, generator=generator, device=device)
            features = (prototypes[pick] + spread[pick] * torch.randn(points, channels, generator=generator,
                                                                      device=device)).to(dtype)
            smoothing = [0.0, 0.01, 0.3][trial % 3]
            assignment = _op_assignment(backend, prototypes, features, smoothing)
            expected = prototype_counts(prototypes, features, smoothing)
            assert torch.equal(torch.bincount(assignment, minlength=count), expected), f"trial {trial}"

    def test_gradcheck(self, target):
        device, backend = target
        prototypes = torch.randn(4, 3, device=device, dtype=torch.float64, requires_grad=True)
        features = torch.randn(2, 7, 3, device=device, dtype=torch.float64)
        # The same noise on every evaluation; the counts are locally constant in the prototypes.
        assert gradcheck(lambda p: _draw(p, features, 0.3, 0.01, backend), (prototypes,), device, backend)

    def test_noise_is_a_constant(self, kernel_target):
        device, backend = kernel_target
        prototypes = torch.randn(3, 4, device=device, requires_grad=True)
        noise = (0.1 * torch.randn(9, 4, device=device)).requires_grad_(True)
        op = _namespace(backend).gmm_prototype_samples
        samples = op(prototypes, torch.randn(9, 4, device=device), noise, 0.01)[0]
        grad_p, grad_z = torch.autograd.grad(samples.sum(), (prototypes, noise), allow_unused=True,
                                             materialize_grads=True)
        assert grad_p.abs().sum() > 0 and torch.equal(grad_z, torch.zeros_like(noise))

    def test_opcheck(self, kernel_target, dtype):
        device, backend = kernel_target
        namespace = _namespace(backend)
        for prototypes, features, noise_std, smoothing in sample_inputs(device, dtype)[3:8]:
            flat = features.reshape(-1, prototypes.shape[1])
            noise = noise_std * torch.randn_like(flat)
            torch.library.opcheck(namespace.gmm_prototype_samples.default,
                                  (prototypes.clone().requires_grad_(True), flat, noise, smoothing))
        prototypes, features, _, smoothing = sample_inputs(device, dtype)[0]
        flat = features.reshape(-1, prototypes.shape[1])
        noise = 0.02 * torch.randn_like(flat)
        _, assignment = namespace.gmm_prototype_samples(prototypes, flat, noise, smoothing)
        torch.library.opcheck(namespace.gmm_prototype_samples_backward.default,
                              (torch.randn_like(flat), prototypes, noise, assignment))

    def test_compile_fullgraph(self, target):
        device, backend = target
        prototypes = F.normalize(torch.randn(5, 8, device=device), dim=-1).requires_grad_(True)
        features = F.normalize(torch.randn(4, 6, 8, device=device), dim=-1)

        def fn(p, f, noise_std):  # the noise is drawn inside the graph
            return gmm_prototype_samples(p, f, noise_std=noise_std, backend=backend)

        torch._dynamo.reset()
        compiled = torch.compile(fn, fullgraph=True)
        assert_close(compiled(prototypes, features, 0.0), fn(prototypes, features, 0.0))
        cotangent = torch.randn(24, 8, device=device)
        assert_close(torch.autograd.grad(compiled(prototypes, features, 0.0), prototypes, cotangent)[0],
                     torch.autograd.grad(fn(prototypes, features, 0.0), prototypes, cotangent)[0])
        noisy = compiled(prototypes, features, 0.05)
        assert noisy.shape == (24, 8)
        assert_close(noisy.norm(dim=-1), torch.ones(24))

    # --- known answers ---------------------------------------------------------------------

    def test_largest_remainder_tie_goes_to_lower_index(self, target, dtype):
        # Features on the prototypes, counts (1, 1, 3), zero spreads; smoothing 1 gives shares
        # (6, 6, 8) / 20, quotas (1.5, 1.5, 2): one sample left, tied between prototypes 0 and 1,
        # goes to 0. (The official rule, floor then the rest to the last, would give (1, 1, 3).)
        device, backend = target
        prototypes = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]], device=device, dtype=dtype)
        features = prototypes[torch.tensor([0, 1, 2, 2, 2], device=device)]
        assert prototype_counts(prototypes, features, 1.0).tolist() == [2, 1, 2]
        samples = gmm_prototype_samples(prototypes, features, noise_std=0.0, smoothing=1.0, backend=backend)
        assert_close(samples, prototypes[torch.tensor([0, 0, 1, 2, 2])].cpu())

    def test_counts_by_hand(self):
        # Two features on prototype 0 of 6, no smoothing: spreads (0, 1, 1, 1, 1, 1), variance
        # 5/36; shares (2 + 5/18, 5/18 x 5) / (11/3); quotas (1.24, 0.15 x 5): floors (1, 0, ...)
        # and the one left goes to prototype 0. Prototypes 1-5 get no sample.
        prototypes = torch.randn(6, 4)
        features = prototypes[[0, 0]]
        assert prototype_counts(prototypes, features, 0.0).tolist() == [2, 0, 0, 0, 0, 0]

    def test_empty_prototypes_get_no_samples(self, target):
        device, backend = target
        prototypes = F.normalize(torch.randn(6, 4, device=device), dim=-1)
        features = prototypes[[0, 0]]
        samples = gmm_prototype_samples(prototypes, features, noise_std=0.0, smoothing=0.0, backend=backend)
        assert_close(samples, prototypes[[0, 0]])
        if backend != "reference":
            assert _op_assignment(backend, prototypes, features, 0.0).tolist() == [0, 0]

    def test_identical_prototypes_take_the_lower_index(self, target, dtype):
        device, backend = target
        prototypes = F.normalize(torch.randn(1, 5, device=device, dtype=dtype), dim=-1).repeat(3, 1)
        features = F.normalize(torch.randn(12, 5, device=device, dtype=dtype), dim=-1)
        counts = prototype_counts(prototypes, features, 0.01)
        assert counts[0] > counts[1] == counts[2]  # all features pick prototype 0
        if backend != "reference":
            assert torch.equal(torch.bincount(_op_assignment(backend, prototypes, features, 0.01), minlength=3), counts)
        samples = gmm_prototype_samples(prototypes, features, noise_std=0.0, backend=backend)
        assert_close(samples, prototypes[:1].expand(12, -1))

    def test_identical_features(self, target, dtype):
        device, backend = target
        prototypes = F.normalize(torch.randn(4, 3, device=device, dtype=dtype), dim=-1)
        features = F.normalize(torch.randn(1, 3, device=device, dtype=dtype), dim=-1).expand(10, -1)
        expected = _draw(prototypes, features, 0.02, 0.01, "reference")
        assert_close(_draw(prototypes, features, 0.02, 0.01, backend), expected)

    def test_single_prototype(self, target, dtype):
        device, backend = target
        prototypes = torch.randn(1, 4, device=device, dtype=dtype)
        samples = gmm_prototype_samples(prototypes, torch.randn(7, 4, device=device, dtype=dtype),
                                        noise_std=0.0, backend=backend)
        assert_close(samples, F.normalize(prototypes, dim=-1).expand(7, -1))

    # --- edge cases ------------------------------------------------------------------------

    def test_noise_and_generator(self, target, dtype):
        device, backend = target
        prototypes = F.normalize(torch.randn(4, 6, device=device, dtype=dtype), dim=-1)
        features = F.normalize(torch.randn(20, 6, device=device, dtype=dtype), dim=-1)
        first = _draw(prototypes, features, 0.02, 0.01, backend, seed=5)
        assert torch.equal(first, _draw(prototypes, features, 0.02, 0.01, backend, seed=5))
        assert not torch.equal(first, _draw(prototypes, features, 0.02, 0.01, backend, seed=6))
        assert_close(first.norm(dim=-1), torch.ones(20, dtype=dtype))
        clean = _draw(prototypes, features, 0.0, 0.01, backend, seed=5)
        assert (first - clean).abs().max() < 0.2  # noise of std 0.02, then renormalised

    def test_features_get_no_gradient(self, target):
        device, backend = target
        prototypes = torch.randn(3, 4, device=device, requires_grad=True)
        features = torch.randn(8, 4, device=device, requires_grad=True)
        samples = gmm_prototype_samples(prototypes, features, backend=backend)
        grad_p, grad_f = torch.autograd.grad(samples.sum(), (prototypes, features), allow_unused=True,
                                             materialize_grads=True)
        assert grad_p.abs().sum() > 0 and torch.equal(grad_f, torch.zeros_like(features))

    def test_deterministic(self, kernel_target):
        device, backend = kernel_target
        prototypes, features, _, _ = sample_inputs(device, torch.float32)[0]
        prototypes = prototypes.clone().requires_grad_(True)
        first = _draw(prototypes, features, 0.02, 0.01, backend)
        second = _draw(prototypes, features, 0.02, 0.01, backend)
        assert torch.equal(first, second)
        cotangent = torch.randn_like(first)
        assert torch.equal(torch.autograd.grad(first, prototypes, cotangent)[0],
                           torch.autograd.grad(second, prototypes, cotangent)[0])

    def test_non_finite_inputs_give_nan(self, target):
        device, backend = target
        prototypes = torch.randn(4, 3, device=device)
        features = torch.randn(10, 3, device=device)
        features[2, 1] = float("nan")
        samples = gmm_prototype_samples(prototypes, features, backend=backend)
        assert samples.shape == (10, 3) and samples.isnan().all()

    def test_reference_non_finite_inputs_give_nan_not_an_index_error(self):
        # NaN shares used to become arbitrary integer counts and an out-of-range gather.
        prototypes = torch.randn(4, 3)
        features = torch.randn(10, 3)
        features[0, 0] = float("nan")
        samples = reference.gmm_prototype_samples(prototypes, features, torch.zeros(10, 3))
        assert samples.shape == (10, 3) and samples.isnan().all()

    @pytest.mark.parametrize(
        "prototypes, features, kwargs, error, match",
        [
            ("protos", torch.zeros(5, 3), {}, TypeError, "prototypes"),
            (torch.zeros(4, 3, dtype=torch.int64), torch.zeros(5, 3), {}, TypeError, "prototypes"),
            (torch.zeros(4, 3), torch.zeros(5, 3, dtype=torch.int32), {}, TypeError, "features"),
            (torch.zeros(4, 3), torch.zeros(5, 3, dtype=torch.float64), {}, TypeError, "features"),
            (torch.zeros(3), torch.zeros(5, 3), {}, ValueError, "prototypes"),
            (torch.zeros(2, 4, 3), torch.zeros(5, 3), {}, ValueError, "prototypes"),
            (torch.zeros(0, 3), torch.zeros(5, 3), {}, ValueError, "prototypes"),
            (torch.zeros(4, 3), torch.zeros(5, 2), {}, ValueError, "features"),
            (torch.zeros(4, 3), torch.zeros(0, 3), {}, ValueError, "features"),
            (torch.zeros(4, 3), torch.zeros(5, 3), {"noise_std": -0.1}, ValueError, "noise_std"),
            (torch.zeros(4, 3), torch.zeros(5, 3), {"noise_std": float("inf")}, ValueError, "noise_std"),
            (torch.zeros(4, 3), torch.zeros(5, 3), {"noise_std": "0.1"}, TypeError, "noise_std"),
            (torch.zeros(4, 3), torch.zeros(5, 3), {"smoothing": -1.0}, ValueError, "smoothing"),
            (torch.zeros(4, 3), torch.zeros(5, 3), {"smoothing": None}, TypeError, "smoothing"),
            (torch.zeros(4, 3), torch.zeros(5, 3), {"backend": "nope"}, ValueError, "backend"),
        ],
    )
    def test_exception(self, target, prototypes, features, kwargs, error, match):
        device, backend = target
        kwargs = {"backend": backend, **kwargs}
        if isinstance(prototypes, torch.Tensor):
            prototypes = prototypes.to(device)
        with pytest.raises(error, match=match):
            gmm_prototype_samples(prototypes, features.to(device), **kwargs)

    def test_mismatched_devices(self):
        other = "cuda" if torch.cuda.is_available() else "meta"
        with pytest.raises(ValueError, match="device"):
            gmm_prototype_samples(torch.zeros(4, 3), torch.zeros(5, 3, device=other))
