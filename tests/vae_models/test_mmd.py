"""The MMD estimate (vae_models.mmd) and ConvVAE's ``mmd_weight`` (InfoVAE's training term)."""

from __future__ import annotations

import warnings

import pytest
import torch

from ar_models.errors import ModelConfigError
from tests.vae_models.test_vector_prior import tiny_global
from vae_models.conv_vae import ConvVAE
from vae_models.mmd import IMQ_SCALES, imq_kernel_sum, mmd_squared

D = 3 * 32 * 32


def test_kernel_by_hand():
    a = torch.tensor([[0.0, 0.0], [1.0, 2.0]])
    b = torch.tensor([[3.0, -1.0]])
    k = imq_kernel_sum(a, b, variance=0.5)
    for i in range(2):
        dist2 = float(((a[i] - b[0]) ** 2).sum())
        expected = sum(s * 2 * 2 * 0.5 / (s * 2 * 2 * 0.5 + dist2) for s in IMQ_SCALES)
        assert k[i, 0].item() == pytest.approx(expected, rel=1e-6)


def test_unbiased_estimate_by_hand():
    """The U-statistic: the x–x and y–y means leave out the diagonal, the x–y mean does not."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(5, 3, generator=g), torch.randn(4, 3, generator=g) + 1.0

    def k(u, v):
        return imq_kernel_sum(u[None], v[None])[0, 0]

    kxx = sum(k(x[i], x[j]) for i in range(5) for j in range(5) if i != j) / 20
    kyy = sum(k(y[i], y[j]) for i in range(4) for j in range(4) if i != j) / 12
    kxy = sum(k(x[i], y[j]) for i in range(5) for j in range(4)) / 20
    assert mmd_squared(x, y).item() == pytest.approx((kxx + kyy - 2 * kxy).item(), rel=1e-5)


def test_mmd_separates_distributions():
    """Same distribution: the unbiased estimate averages to 0 (within its standard error);
    a shifted or a narrower one: far above it."""
    g = torch.Generator().manual_seed(1)
    d, n, reps = 16, 64, 200

    def mean_and_se(scale: float, shift: float) -> tuple[float, float]:
        values = torch.stack(
            [
                mmd_squared(
                    scale * torch.randn(n, d, generator=g) + shift, torch.randn(n, d, generator=g)
                )
                for _ in range(reps)
            ]
        )
        return values.mean().item(), values.std().item() / reps**0.5

    same, se = mean_and_se(1.0, 0.0)
    assert abs(same) < 4 * se
    for scale, shift in [(1.0, 0.5), (0.5, 0.0)]:
        differ, _ = mean_and_se(scale, shift)
        assert differ > 0.1 and differ > 50 * se


def test_mmd_bad_shapes():
    with pytest.raises(ValueError, match=r"\[n, d\]"):
        mmd_squared(torch.zeros(4, 2), torch.zeros(4, 3))
    with pytest.raises(ValueError, match="at least 2"):
        mmd_squared(torch.zeros(1, 2), torch.zeros(4, 2))


def training_loss(model: ConvVAE, x: torch.Tensor, seed: int) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log without a trainer
        torch.manual_seed(seed)
        return model.training_step(x, 0)


def test_mmd_weight_adds_gamma_mmd_to_the_objective_only():
    """loss = [mean −ELBO + β-change + γ · MMD²(z, ε)] / D, with z the batch's posterior draws and
    ε ~ N(0, I) drawn after them; the logged bound (``nll``) is the same model's."""
    x = torch.randint(0, 256, (6, 3, 32, 32), generator=torch.Generator().manual_seed(2))
    gamma = 300.0
    model = tiny_global("normal", mmd_weight=gamma, beta=2.0)
    plain = tiny_global("normal", beta=2.0)
    loss = training_loss(model, x, seed=3)
    torch.manual_seed(3)
    model.loss_terms(x)  # the same draws again: they are kept for the objective
    z = model._posterior_draws[0].flatten(1)
    eps = torch.randn_like(z)
    expected = training_loss(plain, x, seed=3) + gamma * mmd_squared(z, eps) / D
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    model.eval()
    plain.eval()
    torch.manual_seed(4)
    a = model.nll(x)
    torch.manual_seed(4)
    assert torch.equal(a, plain.nll(x))


def test_mmd_weight_warms_up_with_the_kl():
    """With ``kl_warmup_steps`` T_w, γ is ramped by min(1, t / T_w) like β: 0 at step 0."""
    x = torch.randint(0, 256, (6, 3, 32, 32), generator=torch.Generator().manual_seed(2))
    warm = training_loss(tiny_global("normal", mmd_weight=1e4, kl_warmup_steps=10), x, seed=5)
    assert warm.item() == pytest.approx(
        training_loss(tiny_global("normal", kl_warmup_steps=10), x, seed=5).item()
    )


def test_mmd_weight_bad_config():
    with pytest.raises(ModelConfigError, match="mmd_weight must be a finite number >= 0"):
        ConvVAE(mmd_weight=-1.0)
    with pytest.raises(ModelConfigError, match="needs prior 'normal'"):
        ConvVAE(prior="flow", mmd_weight=1.0)
