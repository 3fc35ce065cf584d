"""Latent-use diagnostics: active units and the mutual-information estimate on posteriors whose
answer is known, and their per-epoch logging by every VAE."""

from __future__ import annotations

import math

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from datamodules.toy2d import Toy2DDataModule
from vae_models.conv_vae import ConvVAE
from vae_models.latent_use import (
    LatentUse,
    active_units,
    log_q_matrix,
    mutual_information,
    unit_activity,
)
from vae_models.pixel_vae import PixelVAE
from vae_models.vae2d import VAE2D


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_active_units_count_the_units_whose_mean_moves():
    n = 4000
    base = torch.randn(n, generator=seeded())
    # population variances of the posterior means: 1, 0.02, 0.005, 0 (and a logvar is not read)
    mu = torch.stack([base, 0.02**0.5 * base, 0.005**0.5 * base, torch.full((n,), 3.0)], 1)
    expected = torch.tensor([1.0, 0.02, 0.005, 0.0]).double() * base.double().var(unbiased=False)
    assert torch.allclose(unit_activity(mu), expected, rtol=1e-5, atol=1e-12)
    assert active_units(mu) == 2
    assert active_units(mu.view(n, 2, 2)) == 2  # any latent shape: units are flattened


def test_log_q_matrix_is_the_gaussian_log_density_of_every_pair():
    g = seeded(1)
    mu, logvar, z = (
        torch.randn(5, 3, generator=g),
        torch.randn(5, 3, generator=g),
        torch.randn(4, 3, generator=g),
    )
    expected = torch.empty(4, 5, dtype=torch.float64)
    for i in range(4):
        for n in range(5):
            q = torch.distributions.Normal(mu[n].double(), torch.exp(0.5 * logvar[n]).double())
            expected[i, n] = q.log_prob(z[i].double()).sum()
    assert torch.allclose(log_q_matrix(z, mu, logvar, chunk=3), expected, atol=1e-9)


def test_identical_posteriors_carry_no_information():
    mu = torch.randn(1, 6, generator=seeded(2)).expand(50, 6)
    logvar = torch.full((50, 6), -1.0)
    assert mutual_information(mu, logvar, seeded()) == pytest.approx(0.0, abs=1e-9)
    assert active_units(mu) == 0


@pytest.mark.parametrize("k", [2, 5, 10])
def test_k_separated_codes_carry_log_k_nats(k):
    """N = 20k posteriors, 20 copies of each of k codes that do not overlap: q(z) is the uniform
    mixture of k narrow Gaussians, so I(x; z) = log k."""
    centres = 100.0 * torch.randn(k, 3, generator=seeded(3))
    mu = centres.repeat_interleave(20, dim=0)
    logvar = torch.full_like(mu, math.log(1e-4))
    assert mutual_information(mu, logvar, seeded()) == pytest.approx(math.log(k), abs=1e-6)


def test_the_estimate_cannot_exceed_log_n():
    mu = 100.0 * torch.randn(64, 4, generator=seeded(4))  # 64 distinct, non-overlapping codes
    logvar = torch.full_like(mu, -8.0)
    assert mutual_information(mu, logvar, seeded()) == pytest.approx(math.log(64), abs=1e-6)


def test_gaussian_channel():
    """μ ~ N(0, 1), σ² = 1/9: z = μ + σ ε is a Gaussian channel with I = ½ ln(1 + 1/σ²) nats."""
    mu = torch.randn(4000, 1, generator=seeded(5))
    logvar = torch.full_like(mu, math.log(1 / 9))
    estimate = mutual_information(mu, logvar, seeded(6))
    assert estimate == pytest.approx(0.5 * math.log(10.0), abs=0.06)


def test_metric_keeps_the_first_points_and_matches_the_functions():
    g = seeded(7)
    mu, logvar = torch.randn(30, 2, 3, generator=g), torch.randn(30, 2, 3, generator=g)
    metric = LatentUse(max_points=25, seed=11)
    for start in range(0, 30, 8):
        metric.update(mu[start : start + 8], logvar[start : start + 8])
    result = metric.compute()
    assert result["active_units"].item() == active_units(mu[:25])
    expected = mutual_information(mu[:25], logvar[:25], seeded(11))
    assert result["mi_nats"].item() == pytest.approx(expected, abs=1e-6)
    metric.reset()
    metric.update(mu[:3], logvar[:3])
    assert metric.compute()["active_units"].item() == active_units(mu[:3])


def test_bad_posteriors_stop_with_a_message():
    with pytest.raises(ValueError, match="same|both"):
        mutual_information(torch.zeros(3, 2), torch.zeros(3, 1))
    with pytest.raises(ValueError, match="finite"):
        mutual_information(torch.full((3, 2), math.nan), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="max_points"):
        LatentUse(max_points=1)


def optimal_data1_vae() -> VAE2D:
    """The exact posterior of dataset 1's one-factor model in a linear encoder (no hidden layer).

    Dataset 1 is x = m + a v̂ z + ε, a² = 24, v̂ = (1, 1)/√2, ε ~ N(0, I), so p(z|x) is
    N(a v̂ᵀ(x − m) / 25, 1/25) for z0 and the prior N(0, 1) for z1: one active unit
    (Var_x E[z0|x] = 24/25) and I(x; z) = ½ ln 25 nats."""
    model = VAE2D(latent_dim=2, hidden_sizes=[])
    a, v = math.sqrt(24.0), torch.tensor([1.0, 1.0]) / math.sqrt(2.0)
    m = torch.tensor([1.0, 2.0])
    layer = model.encoder[0]  # Linear(2, 4): (μ0, μ1, logvar0, logvar1)
    with torch.no_grad():
        layer.weight.zero_()
        layer.bias.zero_()
        layer.weight[0] = a * v / 25.0
        layer.bias[0] = -(a * v / 25.0) @ m
        layer.bias[2] = math.log(1.0 / 25.0)
    return model


def quiet_trainer(tmp_path, **kwargs) -> pl.Trainer:
    return pl.Trainer(
        default_root_dir=tmp_path,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **kwargs,
    )


def test_vae2d_on_dataset_1_with_its_exact_posterior(tmp_path):
    data = Toy2DDataModule(dataset=1, count=20000, batch_size=250)
    model = optimal_data1_vae()
    logged = quiet_trainer(tmp_path).validate(model, datamodule=data, verbose=False)[0]
    assert logged["val/active_units"] == 1
    assert logged["val/mi_nats"] == pytest.approx(0.5 * math.log(25.0), abs=0.08)
    # the KL of the used dimension is the same ½ ln 25 (the aggregate posterior is the prior)
    kl0_nats = logged["val/kl_dim0_bpd"] * 2 * math.log(2)
    assert kl0_nats == pytest.approx(0.5 * math.log(25.0), abs=0.08)


def images(n: int) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, 32, 32), generator=seeded(8))


def tiny_conv() -> ConvVAE:
    torch.manual_seed(0)
    return ConvVAE(latent_shape=(2, 8, 8), n_filters=8, n_layers=1)


def tiny_pixel() -> PixelVAE:
    torch.manual_seed(0)
    return PixelVAE(latent_shape=(2, 8, 8), n_filters=8, n_layers=1, pixel_filters=8, n_mixtures=2)


def collapse_encoder(model: torch.nn.Module) -> None:
    """q(z|x) = N(0, I) for every x: the encoder's last conv outputs zeros."""
    with torch.no_grad():
        model.encoder[-1].weight.zero_()
        model.encoder[-1].bias.zero_()


@pytest.mark.parametrize("make", [tiny_conv, tiny_pixel], ids=["ConvVAE", "PixelVAE"])
def test_image_vaes_log_latent_use_and_tell_a_collapsed_encoder(tmp_path, make):
    loader = DataLoader(TensorDataset(images(24), torch.zeros(24, dtype=torch.long)), batch_size=8)
    model = make()
    with torch.no_grad():  # an encoder whose means move strongly with the input
        model.encoder[-1].weight.mul_(100.0)
    logged = quiet_trainer(tmp_path).validate(model, loader, verbose=False)[0]
    assert 0 < logged["val/active_units"] <= 2 * 8 * 8
    assert 0.5 * math.log(24) < logged["val/mi_nats"] <= math.log(24) + 1e-6
    collapse_encoder(model)
    logged = quiet_trainer(tmp_path).test(model, loader, verbose=False)[0]
    assert logged["test/active_units"] == 0
    assert logged["test/mi_nats"] == pytest.approx(0.0, abs=1e-9)
    assert logged["test/kl_bpd"] == pytest.approx(0.0, abs=1e-6)
