"""MADE: exact normalisation, log-prob = Σ log conditionals, and the autoregressive property."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from ar_models.errors import ModelConfigError
from ar_models.made import MADE, MADENet


def all_states(n_vars: int, k: int) -> torch.Tensor:
    """Every x ∈ {0..k-1}^D, ``[k^D, D]``, in lexicographic order."""
    return torch.tensor(list(itertools.product(range(k), repeat=n_vars)))


def randomise_(module: torch.nn.Module, seed: int = 0) -> None:
    """Replace every parameter with N(0, 1) draws, so the test is not helped by small weights."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))


def test_2d_sums_to_one_over_all_40000_states() -> None:
    torch.manual_seed(0)
    model = MADE(n_vars=2, n_categories=200, hidden_sizes=[16], dropout=0.5).double()
    randomise_(model)
    model.eval()  # the density is that of the eval-mode network (dropout off)
    x = all_states(2, 200)
    assert len(x) == 40000
    total = torch.exp(-model.nll(x)).sum()
    assert abs(total.item() - 1.0) < 1e-5


@pytest.mark.parametrize("ordering", [None, [2, 0, 1], [1, 2, 0]])
@pytest.mark.parametrize("mask_seed", [None, 3])
@pytest.mark.parametrize("aux_dim", [0, 2])
def test_joint_normalised_and_conditionals_are_its_marginal_ratios(
    ordering: list[int] | None, mask_seed: int | None, aux_dim: int
) -> None:
    """Σ_x p(x | a) = 1, and p(x_{o_d} | x_{o_<d}) from the logits equals the ratio of the joint's
    marginals p(x_{o_≤d}) / p(x_{o_<d}) (which holds only when the network is autoregressive)."""
    torch.manual_seed(1)
    d, k = 3, 4
    net = MADENet(d, k, [12, 12], ordering, aux_dim=aux_dim, mask_seed=mask_seed).double()
    randomise_(net, seed=2)
    x = all_states(d, k)
    aux = torch.randn(1, aux_dim, dtype=torch.double).expand(len(x), -1) if aux_dim else None
    log_joint = net.log_prob(x, aux)
    assert abs(log_joint.exp().sum().item() - 1.0) < 1e-10

    logits = net(x, aux)
    log_cond = F.log_softmax(logits, -1).gather(-1, x.unsqueeze(-1)).squeeze(-1)  # [N, D]
    torch.testing.assert_close(log_joint, log_cond.sum(-1))  # log p = Σ log conditionals

    joint = log_joint.exp().view([k] * d)
    for pos, v in enumerate(net.ordering):
        seen = net.ordering[: pos + 1]
        others = [u for u in range(d) if u not in seen]
        marg = joint.sum(dim=others, keepdim=True) if others else joint
        prev = marg.sum(dim=v, keepdim=True)
        cond = (marg / prev).expand([k] * d).reshape(-1)
        torch.testing.assert_close(log_cond[:, v].exp(), cond)


def orderings_and_masks() -> list[tuple[list[int], int | None, int]]:
    cases = [(list(p), None, 0) for p in itertools.permutations(range(3))]
    gen = torch.Generator().manual_seed(0)
    for seed in range(4):
        order = torch.randperm(5, generator=gen).tolist()
        cases += [(order, seed, 0), (order, seed + 10, 3)]
    return cases


@pytest.mark.parametrize("ordering,mask_seed,aux_dim", orderings_and_masks())
def test_autoregressive_property_by_gradients(
    ordering: list[int], mask_seed: int | None, aux_dim: int
) -> None:
    """∂ logits_v / ∂ input_u = 0 whenever u is at or after v in the ordering; with cyclic
    degrees, logits_v do depend on every variable before v."""
    d, k = len(ordering), 3
    net = MADENet(d, k, [20, 20], ordering, aux_dim=aux_dim, mask_seed=mask_seed).double()
    randomise_(net)
    inputs = torch.rand(4, d, k, dtype=torch.double, requires_grad=True)
    aux = torch.randn(4, aux_dim, dtype=torch.double) if aux_dim else None
    logits = net.forward_one_hot(inputs, aux)
    position = {v: i for i, v in enumerate(ordering)}
    for v in range(d):
        for c in range(k):
            (grad,) = torch.autograd.grad(logits[:, v, c].sum(), inputs, retain_graph=True)
            influence = grad.abs().sum(dim=(0, 2))  # per input variable
            for u in range(d):
                if position[u] >= position[v]:
                    assert influence[u] == 0, (v, u)
                elif mask_seed is None:
                    assert influence[u] > 0, (v, u)


@pytest.mark.parametrize("mask_seed", [None, 5])
def test_autoregressive_property_by_perturbation(mask_seed: int | None) -> None:
    """Changing x_u (integer inputs, full forward) leaves the logits of every v at or before u in
    the ordering unchanged."""
    ordering = [3, 1, 0, 2]
    net = MADENet(4, 5, [32, 32], ordering, mask_seed=mask_seed)
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 5, (64, 4), generator=gen)
    base = net(x)
    for u in range(4):
        y = x.clone()
        y[:, u] = (y[:, u] + 1 + torch.randint(0, 4, (64,), generator=gen)) % 5
        changed = (net(y) - base).abs().amax(dim=(0, 2))
        for pos, v in enumerate(ordering):
            if pos <= ordering.index(u):
                assert changed[v] == 0, (u, v)


def test_samples_follow_the_model() -> None:
    torch.manual_seed(0)
    net = MADENet(2, 3, [16], ordering=[1, 0])
    randomise_(net)
    probs = net.log_prob(all_states(2, 3)).exp()
    x = net.sample(30000, generator=torch.Generator().manual_seed(0))
    assert x.shape == (30000, 2) and x.dtype == torch.long
    freq = torch.bincount(x[:, 0] * 3 + x[:, 1], minlength=9) / len(x)
    assert (freq - probs).abs().max() < 0.015


@pytest.mark.parametrize(
    ("ordering", "aux_dim", "hidden"), [([2, 0, 1], 0, [16, 12]), ([1, 2, 0], 5, [20])]
)
def test_incremental_sampler_draws_what_the_reference_draws(
    ordering: list[int], aux_dim: int, hidden: list[int]
) -> None:
    """The incremental sampler (first-layer pre-activations updated per drawn value, only the
    drawn variable's logits) draws the same values as D full passes from the same generator."""
    torch.manual_seed(0)
    net = MADENet(3, 4, hidden, ordering=ordering, aux_dim=aux_dim).double().eval()
    randomise_(net)
    aux = torch.randn(500, aux_dim, dtype=torch.float64) if aux_dim else None
    fast = net.sample(500, aux, generator=torch.Generator().manual_seed(3))
    reference = net.sample_reference(500, aux, generator=torch.Generator().manual_seed(3))
    assert torch.equal(fast, reference)
    assert len(torch.unique(fast[:, ordering[-1]])) > 1  # the draws are not all alike


def test_lightning_module_contract() -> None:
    model = MADE(n_vars=2, n_categories=7, hidden_sizes=[8], dropout=0.2)
    assert model.n_dims == 2
    assert model.hparams.dropout == 0.2
    s = model.sample(5)
    assert s.shape == (5, 2) and s.dtype == torch.long and 0 <= s.min() and s.max() < 7
    assert model.nll(s).shape == (5,)
    assert isinstance(model.configure_optimizers(), torch.optim.Adam)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(ordering=[0, 0]),
        dict(hidden_sizes=[0]),
        dict(dropout=1.0),
        dict(n_categories=1),
    ],
)
def test_bad_hyper_parameters(kwargs: dict) -> None:
    with pytest.raises(ModelConfigError):
        MADE(**{"n_vars": 2, "n_categories": 5, **kwargs})
