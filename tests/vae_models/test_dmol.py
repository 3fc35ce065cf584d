"""The discretised mixture of logistics (PixelCNN++): layout, exact normalisation, edge bins,
numerics at extreme parameters, and samples that follow the probabilities."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import chi2

from vae_models import dmol

M = 3


def random_params(
    m: int = M, n: int = 1, seed: int = 0, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """``[n, 10·m, 1, 1]`` parameters: means inside and outside [−1, 1], log-scales from −7 to 1
    (bins far narrower and far wider than a value), coefficients of either sign."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, m, generator=g)
    means = 1.5 * torch.randn(n, 3 * m, generator=g)
    log_scales = -7.0 + 8.0 * torch.rand(n, 3 * m, generator=g)
    coeffs = 2.0 * torch.randn(n, 3 * m, generator=g)
    params = torch.cat([logits, means, log_scales, coeffs], dim=1)
    return params.to(dtype)[:, :, None, None]


def pack(logits, means, log_scales, raw_coeffs) -> torch.Tensor:
    """Parameters of one pixel from ``[M]`` logits and ``[3, M]`` per-channel tables."""
    flat = [torch.as_tensor(t, dtype=torch.float64).flatten() for t in (means, log_scales)]
    raw = torch.as_tensor(raw_coeffs, dtype=torch.float64).flatten()
    params = torch.cat([torch.as_tensor(logits, dtype=torch.float64), *flat, raw])
    return params[None, :, None, None]


def values(r, g, b) -> torch.Tensor:
    """``LongTensor[N, 3, 1, 1]`` pixels from broadcastable r, g, b."""
    r, g, b = torch.broadcast_tensors(*(torch.as_tensor(t) for t in (r, g, b)))
    return torch.stack([r, g, b], dim=1).long()[:, :, None, None]


def test_parameter_layout():
    m = 2
    params = (0.5 * torch.arange(10 * m, dtype=torch.float64))[None, :, None, None]
    p = dmol.unpack(params)
    half = 0.5 * torch.arange(10 * m, dtype=torch.float64)
    assert torch.equal(p.logits[0, :, 0, 0], half[:2])
    assert torch.equal(p.means[0, :, :, 0, 0], half[2:8].view(3, 2))  # M + c·M + k
    assert torch.equal(p.log_scales[0, :, :, 0, 0], half[8:14].view(3, 2))  # 4M + c·M + k
    assert torch.equal(p.coeffs[0, :, :, 0, 0], torch.tanh(half[14:]).view(3, 2))  # 7M + j·M + k
    clamped = dmol.unpack(torch.full((1, 10 * m, 1, 1), 100.0)).log_scales
    assert (clamped == dmol.LOG_SCALE_MAX).all()
    assert dmol.n_params(m) == 10 * m
    with pytest.raises(ValueError, match="10 numbers per mixture component"):
        dmol.unpack(torch.zeros(1, 7, 1, 1))


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-4), (torch.float64, 1e-10)])
@pytest.mark.parametrize("channel", [0, 1, 2])
def test_each_channel_sums_to_one_given_the_others(dtype, tol, channel):
    """Σ over the 256 values of channel c of P_k(x_c | x_<c) = 1 for every component k, with the
    other channels at 0, 255 and values between (so the shifted means cover the edge bins)."""
    sweep = torch.arange(256)
    for seed in range(4):
        params = random_params(seed=seed, dtype=dtype)
        for other in (0, 255, 37, 200):
            fixed = (other, 255 - other, (7 * other) % 256)
            x = values(*(sweep if c == channel else fixed[c] for c in range(3)))
            logp = dmol.channel_log_probs(x, params.expand(256, -1, -1, -1))  # [256, 3, M, 1, 1]
            totals = logp[:, channel, :, 0, 0].exp().sum(0)
            assert torch.allclose(totals, torch.ones(M, dtype=dtype), atol=tol), (seed, other)


def test_edge_bins_by_hand():
    """x = 0 has P = σ((−1 + 1/255 − μ)/s), x = 255 has P = 1 − σ((1 − 1/255 − μ)/s), and an
    interior bin the CDF difference, for one component and the R channel."""
    mu, log_s = 0.3, -2.0
    params = pack([0.0], [[mu], [0.0], [0.0]], [[log_s], [0.0], [0.0]], [[0.0], [0.0], [0.0]])
    s = math.exp(log_s)

    def sigmoid(t: float) -> float:
        return 1.0 / (1.0 + math.exp(-t))

    for r, expected in [
        (0, sigmoid((-1 + 1 / 255 - mu) / s)),
        (255, 1 - sigmoid((1 - 1 / 255 - mu) / s)),
        (
            166,
            sigmoid((2 * 166 / 255 - 1 + 1 / 255 - mu) / s)
            - sigmoid((2 * 166 / 255 - 1 - 1 / 255 - mu) / s),
        ),
    ]:
        logp = dmol.channel_log_probs(values([r], [9], [9]), params)[0, 0, 0, 0, 0]
        assert logp.exp().item() == pytest.approx(expected, rel=1e-12)


def test_mixture_marginals_and_joint_subgrid():
    """The R marginal Σ_k π_k P_k(r) sums to 1; for r on a sub-grid (edges included), the joint
    summed over all 256 × 256 (g, b) equals that marginal, in float32 within 1e-4."""
    params64 = random_params(seed=3)
    for dtype, tol in [(torch.float64, 1e-10), (torch.float32, 1e-4)]:
        params = params64.to(dtype)
        log_pi = torch.log_softmax(params[0, :M, 0, 0], 0)
        r_sweep = values(torch.arange(256), 0, 0)
        log_pr = dmol.channel_log_probs(r_sweep, params.expand(256, -1, -1, -1))[:, 0, :, 0, 0]
        marginal = torch.logsumexp(log_pi + log_pr, dim=1).exp()  # [256]
        assert marginal.sum().item() == pytest.approx(1.0, abs=tol)
        g, b = torch.meshgrid(torch.arange(256), torch.arange(256), indexing="ij")
        for r in (0, 1, 64, 127, 254, 255):
            x = values(r, g.flatten(), b.flatten())
            joint = dmol.log_prob(x, params.expand(len(x), -1, -1, -1)).exp().sum()
            assert joint.item() == pytest.approx(marginal[r].item(), abs=tol)


@pytest.mark.slow
def test_full_joint_sums_to_one():
    """Σ over all 256³ pixels of P(x) = 1 (float64, coefficients coupling the channels; ≈ 10 s)."""
    params = random_params(m=2, seed=5)
    g, b = torch.meshgrid(torch.arange(256), torch.arange(256), indexing="ij")
    g, b = g.flatten(), b.flatten()
    expanded = params.expand(len(g), -1, -1, -1)
    total = sum(dmol.log_prob(values(r, g, b), expanded).exp().sum().item() for r in range(256))
    assert total == pytest.approx(1.0, abs=1e-9)


def reference_bin_probability(v: float, mu: float, s: float) -> float:
    """σ(a) − σ(b) in float64 without cancellation: the mirrored σ(−b) − σ(−a) when a, b > 0."""
    a, b = (v + 1 / 255 - mu) / s, (v - 1 / 255 - mu) / s

    def sigmoid(t: float) -> float:
        return 1.0 / (1.0 + math.exp(-t)) if t >= 0 else math.exp(t) / (1.0 + math.exp(t))

    return sigmoid(-b) - sigmoid(-a) if b > 0 else sigmoid(a) - sigmoid(b)


@pytest.mark.parametrize(
    "x, mu, log_s",
    [
        (10, 0.9, -5.0),  # far in the left tail: P ≈ e^-270, 0 in float32 arithmetic
        (250, -0.9, -5.0),  # right tail: σ(a) − σ(b) = 1 − 1 in floating point
        (128, 0.0, 6.5),  # a tiny bin under a very wide logistic (PixelCNN++'s fallback case)
        (128, 0.0038, -7.0),  # the narrowest logistic, centred on the bin's edge
        (3, -0.99, -7.0),
    ],
)
def test_tails_and_tiny_bins_match_a_float64_reference(x, mu, log_s):
    params = pack([0.0], [[mu], [0.0], [0.0]], [[log_s], [0.0], [0.0]], [[0.0], [0.0], [0.0]])
    v = 2 * x / 255 - 1
    expected = math.log(reference_bin_probability(v, mu, math.exp(log_s)))
    for dtype in (torch.float64, torch.float32):
        logp = dmol.channel_log_probs(values([x], [0], [0]), params.to(dtype))[0, 0, 0, 0, 0]
        assert torch.isfinite(logp)
        assert logp.item() == pytest.approx(expected, rel=1e-5 if dtype == torch.float32 else 1e-9)


@pytest.mark.parametrize("scale", [1e2, 1e4, 1e6, 1e30])
def test_extreme_parameters_give_finite_log_probs_and_gradients(scale):
    """Logits, means, log-scales and coefficients of ±scale (float32): log P finite and <= 0,
    gradients finite, at every edge and interior value."""
    g = torch.Generator().manual_seed(0)
    signs = torch.where(torch.rand(8, 10 * M, 4, 4, generator=g) < 0.5, -1.0, 1.0)
    x = torch.randint(0, 256, (8, 3, 4, 4), generator=g)
    x[0], x[1] = 0, 255
    x[2, 0], x[2, 1:] = 0, 255
    for params in (signs * scale, signs * scale * torch.rand(8, 10 * M, 4, 4, generator=g)):
        params.requires_grad_(True)
        logp = dmol.log_prob(x, params)
        assert logp.shape == (8, 4, 4)
        assert torch.isfinite(logp).all() and (logp <= 0).all()
        logp.sum().backward()
        assert torch.isfinite(params.grad).all()


def test_bad_values_are_rejected():
    params = random_params(dtype=torch.float32)
    with pytest.raises(ValueError, match="integer tensor in 0..255"):
        dmol.log_prob(torch.zeros(1, 3, 1, 1), params)
    with pytest.raises(ValueError, match=r"in 0..255, got 0..256"):
        dmol.log_prob(values([256], [0], [0]), params)
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        dmol.log_prob(torch.zeros(1, 1, 1, 1, dtype=torch.long), params)
    with pytest.raises(ValueError, match="differ in batch or image size"):
        dmol.log_prob(torch.zeros(1, 3, 2, 1, dtype=torch.long), params)


def test_samples_follow_the_probabilities():
    """20,000 seeded draws of one pixel (two components, channels coupled, one component near the
    0 edge): a chi-square test of the cell counts against P, every cell with an expected count
    >= 5 on its own and the rest pooled."""
    logits = [0.3, -0.2]
    means = [[-0.99, 0.2], [0.1, -0.1], [0.0, 0.3]]
    log_scales = [[-5.0, -5.3], [-5.5, -4.8], [-5.0, -5.2]]
    raw = [[0.8, -0.5], [0.5, 0.4], [-0.7, 0.6]]
    params = pack(logits, means, log_scales, raw).float()
    n = 20_000
    gen = torch.Generator().manual_seed(0)
    x = dmol.sample(params.expand(n, -1, -1, -1), gen)
    assert x.shape == (n, 3, 1, 1) and x.dtype == torch.long
    assert x.min() >= 0 and x.max() <= 255 and (x[:, 0] == 0).any()
    cells, counts = torch.unique(x[:, :, 0, 0], dim=0, return_counts=True)
    probs = dmol.log_prob(cells[:, :, None, None], params.double().expand(len(cells), -1, -1, -1))
    expected = n * probs.exp().flatten().numpy()
    counts = counts.numpy().astype(np.float64)
    tested = expected >= 5
    observed = np.append(counts[tested], n - counts[tested].sum())
    expected_all = np.append(expected[tested], n - expected[tested].sum())
    assert tested.sum() > 50 and expected_all[-1] >= 5
    statistic = ((observed - expected_all) ** 2 / expected_all).sum()
    assert chi2.sf(statistic, df=len(observed) - 1) > 1e-3, statistic


def test_sampling_is_reproducible_and_reaches_the_edges():
    params = random_params(n=1, seed=2, dtype=torch.float32).expand(50, -1, 3, 3)
    a = dmol.sample(params, torch.Generator().manual_seed(7))
    b = dmol.sample(params, torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    assert a.shape == (50, 3, 3, 3) and a.dtype == torch.long
    # means far outside [-1, 1]: every draw lands in the edge bin
    left = pack([0.0], [[-50.0], [-50.0], [-50.0]], [[0.0]] * 3, [[0.0]] * 3).expand(20, -1, -1, -1)
    assert (dmol.sample(left) == 0).all()
    assert (dmol.sample(left.clone().index_fill_(1, torch.tensor([1, 2, 3]), 50.0)) == 255).all()
