"""The learned Gaussian-mixture prior: its density against torch.distributions, the chain-rule
split into per-element conditionals, normalisation on a grid, and its samples' moments."""

from __future__ import annotations

import pytest
import torch
from torch import distributions as D

from ar_models.errors import ModelConfigError
from vae_models.mixture_prior import GaussianMixturePrior


def random_mixture(shape: tuple[int, ...], k: int, seed: int = 0) -> GaussianMixturePrior:
    torch.manual_seed(seed)
    prior = GaussianMixturePrior(shape, k).double()
    with torch.no_grad():
        prior.logits.normal_()
        prior.log_scales.uniform_(-1.0, 0.5)
    return prior


def reference(prior: GaussianMixturePrior, dims: slice = slice(None)) -> D.Distribution:
    """The same mixture (or its marginal over ``dims``) built by torch.distributions."""
    scales = prior.log_s().exp()[:, dims]
    components = D.Independent(D.Normal(prior.means[:, dims], scales), 1)
    return D.MixtureSameFamily(D.Categorical(logits=prior.logits), components)


def test_log_prob_matches_torch_distributions():
    prior = random_mixture((3, 2, 2), 4)
    z = torch.randn(6, 3, 2, 2, dtype=torch.double)
    expected = reference(prior).log_prob(z.flatten(1))
    assert torch.allclose(prior.log_prob(z), expected, atol=1e-10)


def test_elements_are_the_chain_rule_conditionals():
    """Element d is log p(z_d | z_<d) = log p(z_≤d) − log p(z_<d) with marginals of the mixture;
    the elements sum to log p(z)."""
    prior = random_mixture((4,), 3, seed=1)
    z = torch.randn(5, 4, dtype=torch.double) * 2
    elements = prior.log_prob_elements(z)
    assert elements.shape == z.shape
    assert torch.allclose(elements.sum(1), prior.log_prob(z), atol=1e-10)
    for d in range(4):
        upto = reference(prior, slice(0, d + 1)).log_prob(z[:, : d + 1])
        before = reference(prior, slice(0, d)).log_prob(z[:, :d]) if d else torch.zeros(5).double()
        assert torch.allclose(elements[:, d], upto - before, atol=1e-9)


def test_density_integrates_to_one():
    prior = random_mixture((2,), 3, seed=2)
    grid = torch.linspace(-12, 12, 801, dtype=torch.double)
    step = (grid[1] - grid[0]) ** 2
    points = torch.cartesian_prod(grid, grid)
    with torch.no_grad():
        total = (prior.log_prob(points).exp().sum() * step).item()
    assert total == pytest.approx(1.0, abs=1e-6)


def test_samples_have_the_mixture_moments():
    prior = random_mixture((2,), 3, seed=3)
    torch.manual_seed(0)
    z = prior.sample(40_000)
    ref = reference(prior)
    assert z.shape == (40_000, 2)
    assert torch.allclose(z.mean(0), ref.mean, atol=0.05)
    assert torch.allclose(z.var(0), ref.variance, rtol=0.05)


def test_components_must_be_positive():
    with pytest.raises(ModelConfigError, match="n_components must be a positive integer"):
        GaussianMixturePrior((2,), 0)
