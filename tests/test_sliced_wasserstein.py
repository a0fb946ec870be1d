"""sliced_wasserstein: every backend against the reference, gradients, known answers, POT, edge cases."""
import numpy as np
import pytest
import torch

from gradients import gradcheck
from tolerances import assert_close
from tusk.ops import reference, sliced_wasserstein
from tusk.ops.sliced_wasserstein import random_projections

try:  # POT comes with the `test` extra; without it (a bare checkout) its test is not defined
    import ot
except ImportError:
    ot = None


def _unit_columns(theta):
    return theta / theta.norm(dim=0, keepdim=True)


def sample_inputs(device, dtype):
    """``(x, y, projections)`` cases: odd sizes, N = 1, C = 1, P = 1, several leading dims, more
    problems than projections, TUSK's MNIST size with the wrapper's [P, C]-transposed layout,
    clustered and outlying values (the sort's crowded-bucket fallback)."""
    def make(lead, n, c, p, transposed=False):
        x = torch.randn(*lead, n, c, device=device, dtype=dtype)
        y = torch.randn(*lead, n, c, device=device, dtype=dtype) * 0.5 + 0.3
        if transposed:
            theta = random_projections(c, p, like=x)
        else:
            theta = _unit_columns(torch.randn(c, p, device=device, dtype=dtype))
        return x, y, theta

    cases = [
        make((), 7, 3, 5),
        make((), 1, 4, 3),          # N = 1
        make((), 9, 1, 4),          # C = 1
        make((), 11, 5, 1),         # P = 1
        make((2,), 13, 3, 6),       # a batch
        make((2, 3), 6, 4, 7),      # several leading dims
        make((9,), 5, 3, 2),        # more problems than projections
        make((), 288, 32, 100, transposed=True),  # TUSK's MNIST step
    ]
    # GMM-like clusters: a few centres, tiny noise (crowded buckets).
    centres = torch.randn(4, 6, device=device, dtype=dtype)
    clustered = centres.repeat(25, 1) + 1e-3 * torch.randn(100, 6, device=device, dtype=dtype)
    cases.append((torch.randn(100, 6, device=device, dtype=dtype), clustered,
                  _unit_columns(torch.randn(6, 9, device=device, dtype=dtype))))
    # One far outlier: every other value lands in one bucket (std::sort finishes the sort).
    x, y, theta = make((), 150, 4, 5)
    x[3] = 1e4
    cases.append((x, y, theta))
    return cases


def _grads(out, inputs, cotangent):
    return torch.autograd.grad(out, inputs, cotangent)


class TestSlicedWasserstein:
    def test_smoke(self, target, dtype):
        device, backend = target
        x = torch.tensor([[0.0], [1.0], [3.0]], device=device, dtype=dtype)
        y = torch.tensor([[2.0], [0.5], [1.0]], device=device, dtype=dtype)
        out = sliced_wasserstein(x, y, projections=torch.ones(1, 1, device=device, dtype=dtype), backend=backend)
        assert out.shape == () and out.dtype == dtype and out.device.type == device
        # sorted: (0, 1, 3) against (0.5, 1, 2): (0.25 + 0 + 1) / 3
        assert_close(out, torch.tensor(1.25 / 3, dtype=dtype))

    def test_forward_and_backward_match_reference(self, kernel_target, dtype):
        device, backend = kernel_target
        for x, y, theta in sample_inputs(device, dtype):
            inputs = tuple(t.clone().requires_grad_(True) for t in (x, y, theta))
            expected = reference.sliced_wasserstein(*inputs)
            actual = sliced_wasserstein(inputs[0], inputs[1], projections=inputs[2], backend=backend)
            label = f"{tuple(x.shape)} P={theta.shape[1]}"
            assert actual.shape == expected.shape
            assert_close(actual, expected, msg=f"forward {label}")
            cotangent = torch.randn_like(expected)
            for name, a, e in zip(("x", "y", "projections"), _grads(actual, inputs, cotangent),
                                  _grads(expected, inputs, cotangent)):
                assert_close(a, e, msg=f"grad {name} {label}")

    def test_gradcheck(self, target):
        device, backend = target
        x = torch.randn(2, 6, 3, device=device, dtype=torch.float64, requires_grad=True)
        y = torch.randn(2, 6, 3, device=device, dtype=torch.float64, requires_grad=True)
        theta = torch.randn(3, 4, device=device, dtype=torch.float64, requires_grad=True)
        # Continuous random points: no two projected values tie (the sort is locally constant).
        assert gradcheck(
            lambda a, b, t: sliced_wasserstein(a, b, projections=t, backend=backend), (x, y, theta), device, backend
        )

    def test_opcheck(self, kernel_target, dtype):
        device, backend = kernel_target
        namespace = torch.ops.tusk_triton if backend == "triton" else torch.ops.tusk
        for x, y, theta in sample_inputs(device, dtype)[1:7:2]:  # N = 1, P = 1, several leading dims
            x, y = (t.reshape(-1, *t.shape[-2:]) for t in (x, y))
            args = tuple(t.clone().requires_grad_(True) for t in (x, y, theta))
            torch.library.opcheck(namespace.sliced_wasserstein.default, args)
        x, y, theta = sample_inputs(device, dtype)[4]
        _, x_residual, y_residual = namespace.sliced_wasserstein(x, y, theta)
        grad = torch.randn(x.shape[0], device=device, dtype=dtype)
        for mask in ([True, True, True], [False, True, False]):
            torch.library.opcheck(namespace.sliced_wasserstein_backward.default,
                                  (grad, x, y, theta, x_residual, y_residual, mask))

    def test_compile_fullgraph(self, target):
        device, backend = target
        x = torch.randn(3, 20, 4, device=device, requires_grad=True)
        y = torch.randn(3, 20, 4, device=device)
        theta = random_projections(4, 16, like=x, generator=torch.Generator(device).manual_seed(1))

        def given(a, b):
            return sliced_wasserstein(a, b, projections=theta, backend=backend).sum()

        def drawn(a, b):  # the random-projection path (directions drawn inside the graph)
            return sliced_wasserstein(a, b, projections=16, backend=backend)

        torch._dynamo.reset()
        compiled = torch.compile(given, fullgraph=True)
        assert_close(compiled(x, y), given(x, y))
        assert_close(torch.autograd.grad(compiled(x, y), x)[0], torch.autograd.grad(given(x, y), x)[0])
        # Compiled random draws come from the compiler's own RNG: check the value through the
        # 1-D case, where every unit direction (+-1) gives the same exact W2^2.
        x1, y1 = torch.randn(3, 20, 1, device=device), torch.randn(3, 20, 1, device=device)
        out = torch.compile(drawn, fullgraph=True)(x1, y1)
        assert out.shape == (3,)
        assert_close(out, reference.sliced_wasserstein(x1, y1, torch.ones(1, 1, device=device)))

    def test_non_contiguous_inputs(self, target, dtype):
        device, backend = target
        x = torch.randn(2, 5, 9, device=device, dtype=dtype).transpose(1, 2)  # [2, 9, 5]
        y = torch.randn(2, 5, 9, device=device, dtype=dtype).transpose(1, 2)
        theta = _unit_columns(torch.randn(6, 5, device=device, dtype=dtype)).t()  # [5, 6], strides (1, 5)
        theta = theta[:, ::2]  # no unit stride at all: [5, 3]
        assert not x.is_contiguous() and not theta.is_contiguous()
        expected = reference.sliced_wasserstein(x.contiguous(), y.contiguous(), theta.contiguous())
        assert_close(sliced_wasserstein(x, y, projections=theta, backend=backend), expected)
        broadcast = torch.randn(1, 4, device=device, dtype=dtype).expand(5, 4)  # strides (0, 1)
        expected = reference.sliced_wasserstein(x, y, broadcast.contiguous())
        assert_close(sliced_wasserstein(x, y, projections=broadcast, backend=backend), expected)

    # --- known answers ---------------------------------------------------------------------

    def test_identical_and_permuted_sets_give_zero(self, target, dtype):
        device, backend = target
        x = torch.randn(4, 50, 6, device=device, dtype=dtype)
        permuted = x[:, torch.randperm(50, device=device)]
        assert_close(sliced_wasserstein(x, x, backend=backend), torch.zeros(4, dtype=dtype))
        assert_close(sliced_wasserstein(x, permuted, backend=backend), torch.zeros(4, dtype=dtype))

    def test_one_dimensional_equals_exact_w2(self, target, dtype):
        # In 1-D every unit direction is +-1, and sorting both sides in either direction pairs
        # the same values: SW = the exact squared 2-Wasserstein distance of the empirical measures.
        device, backend = target
        x = np.random.default_rng(0).normal(size=(3, 40, 1))
        y = np.random.default_rng(1).normal(1.0, 2.0, size=(3, 40, 1))
        exact = ((np.sort(x[..., 0], axis=-1) - np.sort(y[..., 0], axis=-1)) ** 2).mean(-1)
        out = sliced_wasserstein(torch.tensor(x, device=device, dtype=dtype),
                                 torch.tensor(y, device=device, dtype=dtype), projections=7, backend=backend)
        assert_close(out, torch.tensor(exact))

    def test_single_point_is_mean_projected_squared_difference(self, target, dtype):
        device, backend = target
        x = torch.randn(5, 1, 3, device=device, dtype=dtype)
        y = torch.randn(5, 1, 3, device=device, dtype=dtype)
        theta = torch.randn(3, 4, device=device, dtype=dtype)
        expected = (((x - y)[:, 0] @ theta) ** 2).mean(-1)
        assert_close(sliced_wasserstein(x, y, projections=theta, backend=backend), expected)

    def test_leading_dims_are_independent_problems(self, target, dtype):
        device, backend = target
        x = torch.randn(2, 3, 8, 4, device=device, dtype=dtype)
        y = torch.randn(2, 3, 8, 4, device=device, dtype=dtype)
        theta = torch.randn(4, 5, device=device, dtype=dtype)
        out = sliced_wasserstein(x, y, projections=theta, backend=backend)
        assert out.shape == (2, 3)
        for i in range(2):
            for j in range(3):
                assert_close(out[i, j], sliced_wasserstein(x[i, j], y[i, j], projections=theta, backend=backend))

    if ot is not None:
        def test_matches_pot(self, target):
            # POT returns (mean_p W_2^2(projection p))^(1/2) with uniform weights: our SW is its square.
            device, backend = target
            x = torch.randn(60, 5, dtype=torch.float64)
            y = torch.randn(60, 5, dtype=torch.float64) + 0.5
            theta = _unit_columns(torch.randn(5, 30, dtype=torch.float64))
            pot = ot.sliced_wasserstein_distance(x.numpy(), y.numpy(), projections=theta.numpy(), p=2)
            out = sliced_wasserstein(x.to(device), y.to(device), projections=theta.to(device), backend=backend)
            assert_close(out, torch.tensor(pot**2, dtype=torch.float64))

    # --- edge cases ------------------------------------------------------------------------

    def test_empty_batch(self, target):
        device, backend = target
        x = torch.randn(0, 5, 3, device=device, requires_grad=True)
        out = sliced_wasserstein(x, torch.randn(0, 5, 3, device=device), backend=backend)
        assert out.shape == (0,)
        assert torch.autograd.grad(out.sum(), x)[0].shape == x.shape

    def test_projection_tensor_gets_gradient(self, target, dtype):
        device, backend = target
        x = torch.randn(10, 3, device=device, dtype=dtype)
        y = torch.randn(10, 3, device=device, dtype=dtype)
        theta = torch.randn(3, 4, device=device, dtype=dtype, requires_grad=True)
        grad = torch.autograd.grad(sliced_wasserstein(x, y, projections=theta, backend=backend), theta)[0]
        expected = torch.autograd.grad(reference.sliced_wasserstein(x, y, theta), theta)[0]
        assert grad.shape == (3, 4) and grad.abs().sum() > 0
        assert_close(grad, expected)

    def test_random_projections_are_unit_and_reproducible(self, target, dtype):
        device, backend = target
        x = torch.randn(30, 6, device=device, dtype=dtype)
        y = torch.randn(30, 6, device=device, dtype=dtype)
        theta = random_projections(6, 50, like=x, generator=torch.Generator(device).manual_seed(3))
        assert theta.shape == (6, 50)
        assert_close(theta.norm(dim=0), torch.ones(50, dtype=dtype))

        def run(seed):
            return sliced_wasserstein(x, y, projections=50, generator=torch.Generator(device).manual_seed(seed),
                                      backend=backend)

        assert torch.equal(run(3), run(3))
        assert not torch.equal(run(3), run(4))
        assert_close(run(3), reference.sliced_wasserstein(x, y, theta))

    def test_deterministic(self, kernel_target):
        device, backend = kernel_target
        x, y, theta = sample_inputs(device, torch.float32)[7]
        x.requires_grad_(True)
        first = sliced_wasserstein(x, y, projections=theta, backend=backend)
        second = sliced_wasserstein(x, y, projections=theta, backend=backend)
        assert torch.equal(first, second)
        assert torch.equal(torch.autograd.grad(first, x)[0], torch.autograd.grad(second, x)[0])

    def test_non_finite_values_do_not_crash(self, target):
        device, backend = target
        x = torch.randn(3, 20, 2, device=device)
        y = torch.randn(3, 20, 2, device=device)
        x[0, 4, 1] = float("nan")
        x[1, 7, 0] = float("inf")
        out = sliced_wasserstein(x, y, backend=backend)
        assert not torch.isfinite(out[:2]).any() and torch.isfinite(out[2])

    @pytest.mark.parametrize(
        "x, y, kwargs, error, match",
        [
            ("points", torch.zeros(4, 2), {}, TypeError, "x"),
            (torch.zeros(4, 2, dtype=torch.int64), torch.zeros(4, 2), {}, TypeError, "x"),
            (torch.zeros(4, 2), torch.zeros(4, 2, dtype=torch.float64), {}, TypeError, "y"),
            (torch.zeros(4), torch.zeros(4), {}, ValueError, "x"),
            (torch.zeros(4, 2), torch.zeros(5, 2), {}, ValueError, "y"),
            (torch.zeros(4, 2), torch.zeros(4, 3), {}, ValueError, "y"),
            (torch.zeros(2, 4, 2), torch.zeros(3, 4, 2), {}, ValueError, "y"),
            (torch.zeros(0, 2), torch.zeros(0, 2), {}, ValueError, "x"),
            (torch.zeros(4, 2), torch.zeros(4, 2), {"projections": 0}, ValueError, "projections"),
            (torch.zeros(4, 2), torch.zeros(4, 2), {"projections": -3}, ValueError, "projections"),
            (torch.zeros(4, 2), torch.zeros(4, 2), {"projections": 2.5}, TypeError, "projections"),
            (torch.zeros(4, 2), torch.zeros(4, 2), {"projections": True}, TypeError, "projections"),
            (torch.zeros(4, 2), torch.zeros(4, 2), {"projections": torch.zeros(3, 5)}, ValueError, "projections"),
            (torch.zeros(4, 2), torch.zeros(4, 2), {"projections": torch.zeros(2)}, ValueError, "projections"),
            (torch.zeros(4, 2), torch.zeros(4, 2), {"projections": torch.zeros(2, 0)}, ValueError, "projections"),
            (torch.zeros(4, 2), torch.zeros(4, 2), {"projections": torch.zeros(2, 5, dtype=torch.int32)},
             TypeError, "projections"),
            (torch.zeros(4, 2), torch.zeros(4, 2), {"projections": torch.zeros(2, 5, dtype=torch.float64)},
             TypeError, "projections"),
            (torch.zeros(4, 2), torch.zeros(4, 2), {"backend": "nope"}, ValueError, "backend"),
        ],
    )
    def test_exception(self, target, x, y, kwargs, error, match):
        device, backend = target
        kwargs = {"backend": backend, **kwargs}
        if isinstance(kwargs.get("projections"), torch.Tensor):
            kwargs["projections"] = kwargs["projections"].to(device)
        if isinstance(x, torch.Tensor):
            x = x.to(device)
        with pytest.raises(error, match=match):
            sliced_wasserstein(x, y.to(device), **kwargs)

    def test_mismatched_devices(self):
        other = "cuda" if torch.cuda.is_available() else "meta"
        with pytest.raises(ValueError, match="device"):
            sliced_wasserstein(torch.zeros(4, 2), torch.zeros(4, 2, device=other))
        with pytest.raises(ValueError, match="device"):
            sliced_wasserstein(torch.zeros(4, 2), torch.zeros(4, 2), projections=torch.zeros(2, 3, device=other))
