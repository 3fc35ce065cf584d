"""The autoregressive-flow prior: log-determinant, autoregressive structure, inverse, density."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from vae_models.flow_prior import AutoregressiveFlowPrior

SHAPE = (2, 3, 3)  # a small latent: C, H, W


def random_flow(shape: tuple[int, int, int] = SHAPE) -> AutoregressiveFlowPrior:
    """A flow with a random (non-identity) last layer, so μ and s depend on z."""
    torch.manual_seed(0)
    flow = AutoregressiveFlowPrior(*shape, n_filters=8).double()
    last = flow.net.layers[-1]
    nn.init.normal_(last.weight, std=0.5)
    nn.init.normal_(last.bias, std=0.5)
    return flow


def test_log_det_matches_autograd_jacobian():
    flow = random_flow()
    z = torch.randn(1, *SHAPE, dtype=torch.float64)

    def eps_of(flat: torch.Tensor) -> torch.Tensor:
        return flow(flat.view(1, *SHAPE))[0].flatten()

    jacobian = torch.autograd.functional.jacobian(eps_of, z.flatten())
    _, log_abs_det = torch.linalg.slogdet(jacobian)
    _, log_det = flow(z)
    assert log_det.shape == (1,)
    assert log_det.item() == pytest.approx(log_abs_det.item(), abs=1e-8)
    assert abs(log_det.item()) > 0.1  # a non-trivial flow


def test_network_is_autoregressive_over_positions():
    """μ and s at position i have zero gradient with respect to z at positions >= i."""
    c, h, w = SHAPE
    flow = random_flow()
    z = torch.randn(1, *SHAPE, dtype=torch.float64, requires_grad=True)
    mu, s = flow.shift_log_scale(z)
    for i in range(h * w):
        row, col = divmod(i, w)
        for out in (mu, s):
            for ch in range(c):
                (grad,) = torch.autograd.grad(out[0, ch, row, col], z, retain_graph=True)
                seen = grad[0].abs().sum(0).flatten()  # per position
                assert torch.all(seen[i:] == 0), f"position {i} reads positions >= {i}"
    # and it does read earlier positions (the flow is not trivially independent)
    (grad,) = torch.autograd.grad(mu[0, :, h - 1, w - 1].sum(), z)
    assert grad[0].abs().sum(0).flatten()[:-1].sum() > 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_inverse_inverts_forward(dtype):
    flow = random_flow((3, 8, 8)).to(dtype)
    eps = torch.randn(4, 3, 8, 8, dtype=dtype)
    z = flow.inverse(eps)
    eps_again, _ = flow(z)
    assert torch.allclose(eps_again, eps, atol=1e-4)
    z_again = flow.inverse(flow(z)[0])
    assert torch.allclose(z_again, z, atol=1e-4)


def test_log_prob_is_change_of_variables():
    flow = random_flow()
    z = torch.randn(5, *SHAPE, dtype=torch.float64)
    eps, log_det = flow(z)
    expected = (-0.5 * (math.log(2 * math.pi) + eps**2)).flatten(1).sum(-1) + log_det
    assert torch.allclose(flow.log_prob(z), expected)
    assert torch.allclose(flow.log_prob_elements(z).flatten(1).sum(-1), expected)


def test_zero_init_is_standard_normal():
    flow = AutoregressiveFlowPrior(*SHAPE, n_filters=8)
    z = torch.randn(3, *SHAPE)
    expected = (-0.5 * (math.log(2 * math.pi) + z**2)).flatten(1).sum(-1)
    assert torch.allclose(flow.log_prob(z), expected, atol=1e-5)
    assert flow.sample(2).shape == (2, *SHAPE)


def test_cached_and_naive_inverse_agree():
    """Sampling runs through the raster sampler; its cached and naive steppers give the same z."""
    flow = random_flow((3, 6, 5))
    eps = torch.randn(4, 3, 6, 5, dtype=torch.float64)
    torch.testing.assert_close(flow.inverse(eps, cached=True), flow.inverse(eps, cached=False))
