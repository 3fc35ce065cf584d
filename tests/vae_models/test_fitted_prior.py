"""The EM-fitted Gaussian-mixture prior: N(0, I) until fitted; after fitting, its density against
torch.distributions, the chain-rule split, recovery of a known mixture, and its state in a
state dict."""

from __future__ import annotations

import math

import pytest
import torch
from torch import distributions as D

from vae_models.fitted_prior import FittedMixturePrior

TRUE_WEIGHTS = torch.tensor([0.3, 0.7], dtype=torch.double)
TRUE_MEANS = torch.tensor([[-4.0, 0.0, 2.0], [3.0, 1.0, -1.0]], dtype=torch.double)
TRUE_TRILS = torch.tensor(
    [
        [[1.0, 0, 0], [0.5, 0.8, 0], [0.0, -0.3, 0.6]],
        [[0.7, 0, 0], [-0.2, 1.2, 0], [0.4, 0.1, 0.9]],
    ],
    dtype=torch.double,
)


def true_mixture(dims: slice = slice(None)) -> D.Distribution:
    """The mixture the codes are drawn from (or its marginal over the leading ``dims``)."""
    cov = TRUE_TRILS @ TRUE_TRILS.transpose(1, 2)
    cov = cov[:, dims, dims]
    components = D.MultivariateNormal(TRUE_MEANS[:, dims], covariance_matrix=cov)
    return D.MixtureSameFamily(D.Categorical(TRUE_WEIGHTS), components)


def fitted_prior(n: int = 4000) -> tuple[FittedMixturePrior, list[float]]:
    torch.manual_seed(0)
    codes = true_mixture().sample((n,))
    prior = FittedMixturePrior((3, 1, 1), 2).double()
    return prior, prior.fit(codes.view(n, 3, 1, 1))


def as_distribution(prior: FittedMixturePrior, dims: slice = slice(None)) -> D.Distribution:
    cov = prior.scale_tril @ prior.scale_tril.transpose(1, 2)
    components = D.MultivariateNormal(prior.means[:, dims], covariance_matrix=cov[:, dims, dims])
    return D.MixtureSameFamily(D.Categorical(logits=prior.log_weights), components)


def test_unfitted_is_the_standard_normal():
    prior = FittedMixturePrior((2, 2, 2), 3)
    z = torch.randn(5, 2, 2, 2)
    assert not bool(prior.fitted)
    expected = -0.5 * (math.log(2 * math.pi) + z**2)
    assert torch.allclose(prior.log_prob_elements(z), expected)
    assert prior.sample(4).shape == (4, 2, 2, 2)


def test_fit_recovers_a_known_mixture():
    prior, history = fitted_prior()
    assert bool(prior.fitted)
    order = prior.means[:, 0].argsort()  # components in the order of TRUE_MEANS
    assert torch.allclose(prior.log_weights.exp()[order], TRUE_WEIGHTS, atol=0.03)
    assert torch.allclose(prior.means[order], TRUE_MEANS, atol=0.1)
    cov = prior.scale_tril @ prior.scale_tril.transpose(1, 2)
    assert torch.allclose(cov[order], TRUE_TRILS @ TRUE_TRILS.transpose(1, 2), atol=0.15)
    assert history[-1] >= history[0]


def test_fitted_density_and_its_chain_rule_split():
    """log p(z) is the mixture of torch.distributions; element d is log p(z_≤d) − log p(z_<d)."""
    prior, _ = fitted_prior()
    z = torch.randn(6, 3, dtype=torch.double) * 3
    elements = prior.log_prob_elements(z.view(6, 3, 1, 1)).view(6, 3)
    assert torch.allclose(elements.sum(1), as_distribution(prior).log_prob(z), atol=1e-9)
    for d in range(3):
        upto = as_distribution(prior, slice(0, d + 1)).log_prob(z[:, : d + 1])
        before = as_distribution(prior, slice(0, d)).log_prob(z[:, :d]) if d else 0.0
        assert torch.allclose(elements[:, d], upto - before, atol=1e-8)


def test_samples_follow_the_fitted_mixture():
    prior, _ = fitted_prior()
    torch.manual_seed(1)
    z = prior.sample(40_000).view(40_000, 3)
    ref = as_distribution(prior)
    assert torch.allclose(z.mean(0), ref.mean, atol=0.05)
    assert torch.allclose(z.var(0), ref.variance, rtol=0.05)


def test_state_dict_keeps_the_fit():
    prior, _ = fitted_prior()
    copy = FittedMixturePrior((3, 1, 1), 2).double()
    copy.load_state_dict(prior.state_dict())
    z = torch.randn(4, 3, 1, 1, dtype=torch.double)
    assert bool(copy.fitted)
    assert torch.allclose(copy.log_prob(z), prior.log_prob(z))


def test_fit_rejects_too_few_or_wrong_codes():
    prior = FittedMixturePrior((3, 1, 1), 5)
    with pytest.raises(ValueError, match="at least 5 codes of 3 numbers"):
        prior.fit(torch.randn(4, 3))
    with pytest.raises(ValueError, match="at least 5 codes of 3 numbers"):
        prior.fit(torch.randn(10, 4))
