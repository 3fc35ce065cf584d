"""Gaussian helpers: log-densities equal torch.distributions, the analytic KL equals Monte Carlo."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Independent, MultivariateNormal, Normal, kl_divergence

from vae_models.gaussians import (
    gaussian_log_prob,
    kl_std_normal,
    kl_std_normal_per_dim,
    reparameterize,
    soft_clamp,
    standard_normal_log_prob,
)
from vae_models.iwae import log_mean_exp


def test_diagonal_log_prob_equals_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mu, logvar = (
        torch.randn(7, 3, generator=g, dtype=torch.float64),
        torch.randn(7, 3, generator=g, dtype=torch.float64),
    )
    x = torch.randn(5, 7, 3, generator=g, dtype=torch.float64) * 3  # broadcast over a leading axis
    expected = Independent(Normal(mu, torch.exp(0.5 * logvar)), 1).log_prob(x)
    torch.testing.assert_close(gaussian_log_prob(x, mu, logvar), expected)


def test_isotropic_log_prob_equals_torch_distributions():
    g = torch.Generator().manual_seed(1)
    mu = torch.randn(6, 2, generator=g, dtype=torch.float64)
    logvar = torch.randn(6, 1, generator=g, dtype=torch.float64)  # one σ² per example
    x = torch.randn(6, 2, generator=g, dtype=torch.float64)
    cov = torch.exp(logvar)[:, :, None] * torch.eye(2, dtype=torch.float64)
    expected = MultivariateNormal(mu, covariance_matrix=cov).log_prob(x)
    torch.testing.assert_close(gaussian_log_prob(x, mu, logvar), expected)


def test_standard_normal_log_prob():
    z = torch.randn(10, 4, dtype=torch.float64)
    expected = Independent(Normal(torch.zeros(4), torch.ones(4)), 1).log_prob(z)
    torch.testing.assert_close(standard_normal_log_prob(z), expected.double())


def test_analytic_kl_equals_torch_and_a_monte_carlo_estimate():
    mu = torch.tensor([[0.5, -1.0], [2.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    logvar = torch.tensor([[-1.0, 0.3], [0.0, -3.0], [0.0, 0.0]], dtype=torch.float64)
    q = Independent(Normal(mu, torch.exp(0.5 * logvar)), 1)
    p = Independent(Normal(torch.zeros_like(mu), torch.ones_like(mu)), 1)
    analytic = kl_std_normal(mu, logvar)
    torch.testing.assert_close(analytic, kl_divergence(q, p))
    torch.testing.assert_close(kl_std_normal_per_dim(mu, logvar).sum(-1), analytic)
    assert analytic[2] == 0  # q = p

    torch.manual_seed(0)
    n = 200_000
    z = reparameterize(mu, logvar, n)  # [n, 3, 2]
    log_ratio = gaussian_log_prob(z, mu, logvar) - standard_normal_log_prob(z)
    estimate, se = log_ratio.mean(0), log_ratio.std(0) / math.sqrt(n)
    assert ((estimate - analytic).abs()[:2] < 4 * se[:2]).all(), (estimate, analytic, se)


def test_reparameterize_has_the_right_moments_and_gradients():
    torch.manual_seed(0)
    mu = torch.tensor([1.0, -2.0], requires_grad=True)
    logvar = torch.tensor([0.0, math.log(9.0)], requires_grad=True)
    z = reparameterize(mu, logvar, 100_000)
    assert z.shape == (100_000, 2)
    torch.testing.assert_close(z.mean(0), mu.detach(), atol=0.05, rtol=0)
    torch.testing.assert_close(z.std(0), torch.tensor([1.0, 3.0]), atol=0.03, rtol=0)
    z.sum().backward()
    assert torch.equal(mu.grad, torch.full((2,), 100_000.0))
    assert logvar.grad is not None and torch.isfinite(logvar.grad).all()


def test_soft_clamp_is_near_identity_inside_and_bounded_outside():
    x = torch.tensor([-1e6, -50.0, -2.0, 0.0, 3.0, 50.0, 1e6])
    y = soft_clamp(x, -12.0, 8.0)
    assert (y >= -12.0).all() and (y <= 8.0).all()
    assert torch.isfinite(torch.exp(y)).all() and torch.isfinite(torch.exp(-y)).all()
    torch.testing.assert_close(y[2:5], x[2:5], atol=1e-2, rtol=0)  # ≥ 5 from the edges
    assert (y.diff() >= 0).all()


@pytest.mark.parametrize("shift", [0.0, 1000.0, -1000.0])
def test_log_mean_exp_is_stable(shift):
    values = torch.tensor([[0.1, -0.3, 2.0], [1.0, 1.0, -5.0]], dtype=torch.float64)
    expected = torch.log(torch.exp(values).mean(1)) + shift
    torch.testing.assert_close(log_mean_exp(values + shift, dim=1), expected)
