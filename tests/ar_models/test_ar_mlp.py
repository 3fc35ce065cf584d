"""AR-MLP p(x1) p(x2 | x1): exact normalisation and log-prob = log p(x1) + log p(x2 | x1)."""

from __future__ import annotations

import pytest
import torch

from ar_models.ar_mlp import ARMLP, ENCODINGS
from ar_models.errors import ModelConfigError


def all_pairs(k: int) -> torch.Tensor:
    """Every (x1, x2) ∈ {0..k-1}², ``[k², 2]``, x1 major."""
    return torch.cartesian_prod(torch.arange(k), torch.arange(k))


def randomise_(module: torch.nn.Module, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_sums_to_one_over_all_40000_states(encoding: str) -> None:
    model = ARMLP(n_categories=200, hidden_sizes=[16], encoding=encoding).double()
    randomise_(model)
    model.eval()  # the density is that of the eval-mode network (dropout off)
    x = all_pairs(200)
    assert len(x) == 40000
    with torch.no_grad():
        total = torch.exp(-model.nll(x)).sum()
    assert abs(total.item() - 1.0) < 1e-5


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_log_prob_is_the_sum_of_the_two_conditionals(encoding: str) -> None:
    k = 6
    model = ARMLP(
        n_categories=k, hidden_sizes=[8, 8], encoding=encoding, n_frequencies=3, dropout=0.5
    ).double()
    randomise_(model, seed=1)
    model.eval()  # dropout off: the density is the eval-mode network
    x = all_pairs(k)
    with torch.no_grad():
        joint = torch.exp(-model.nll(x)).view(k, k)
        p_x1 = torch.softmax(model.x1_logits, 0)
        p_x2 = torch.softmax(model.conditional(model.encoder(torch.arange(k), torch.double)), -1)
    torch.testing.assert_close(joint, p_x1[:, None] * p_x2)
    torch.testing.assert_close(joint.sum(1), p_x1)  # the marginal of x1 is the first factor
    torch.testing.assert_close(joint / joint.sum(1, keepdim=True), p_x2)


def test_cosine_encoding_is_the_dct_basis() -> None:
    k = 8
    model = ARMLP(n_categories=k, encoding="cosine", n_frequencies=k - 1, hidden_sizes=[4])
    basis = torch.cat([torch.full((k, 1), 0.5**0.5), model.encoder(torch.arange(k))], dim=1)
    # with the constant, the k cosines are orthogonal with squared norm k / 2: a full basis
    torch.testing.assert_close(basis.T @ basis, torch.eye(k) * k / 2, atol=1e-5, rtol=0)


def test_cosine_frequencies_are_capped_at_the_full_basis() -> None:
    model = ARMLP(n_categories=10, encoding="cosine", n_frequencies=50, hidden_sizes=[4])
    assert model.encoder(torch.arange(10)).shape == (10, 9)


def test_samples_follow_the_model() -> None:
    torch.manual_seed(0)
    model = ARMLP(n_categories=3, hidden_sizes=[8], encoding="one_hot")
    randomise_(model)
    model.eval()
    probs = torch.exp(-model.nll(all_pairs(3))).detach()
    x = model.sample(30000)
    assert x.shape == (30000, 2) and x.dtype == torch.long
    freq = torch.bincount(x[:, 0] * 3 + x[:, 1], minlength=9) / len(x)
    assert (freq - probs).abs().max() < 0.015


def test_contract_and_hyper_parameters() -> None:
    model = ARMLP(n_categories=7, hidden_sizes=[8], encoding="one_hot")
    assert model.n_dims == 2
    assert model.hparams.encoding == "one_hot"
    assert isinstance(model.configure_optimizers(), torch.optim.Adam)
    with pytest.raises(ValueError, match="LongTensor\\[B, 2\\]"):
        model.nll(torch.zeros(3, dtype=torch.long))


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(encoding="binary"),
        dict(hidden_sizes=[0]),
        dict(n_categories=1),
        dict(dropout=1.0),
        dict(encoding="cosine", n_frequencies=0),
    ],
)
def test_bad_hyper_parameters(kwargs: dict) -> None:
    with pytest.raises(ModelConfigError):
        ARMLP(**kwargs)
