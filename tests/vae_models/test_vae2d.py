"""VAE2D: the loss terms, IWAE-k against the ELBO, test-time logging, numerics, configs."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from ar_models import ModelConfigError
from datamodules.toy2d import Toy2DDataModule, sample_data_3, true_log_prob
from vae_models.vae2d import VAE2D

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs" / "hw3").glob("vae_*.yaml"))


@pytest.fixture(scope="module")
def trained() -> tuple[VAE2D, torch.Tensor]:
    """A small VAE after 600 Adam steps on dataset 3 (whose posteriors are far from Gaussian, so
    the IWAE gains are large), and 1,000 of its test points."""
    torch.manual_seed(0)
    x = torch.from_numpy(sample_data_3()[0]).float()
    train, test = x[:80000], x[80000:81000]
    model = VAE2D(hidden_sizes=[32, 32])
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(600):
        batch = train[torch.randint(0, len(train), (256,))]
        loss = model.loss_terms(batch)["nll"].mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    return model, test


@pytest.mark.parametrize("decoder_variance", ["diagonal", "isotropic"])
def test_loss_terms_add_up(decoder_variance):
    torch.manual_seed(0)
    model = VAE2D(decoder_variance=decoder_variance, latent_dim=3, hidden_sizes=[16, 16])
    x = torch.randn(9, 2) * 3
    terms = model.loss_terms(x)
    assert set(terms) == {"nll", "kl", "recon", "kl_dim0", "kl_dim1", "kl_dim2"}
    assert all(t.shape == (9,) for t in terms.values())
    torch.testing.assert_close(terms["nll"], terms["kl"] + terms["recon"])
    torch.testing.assert_close(sum(terms[f"kl_dim{j}"] for j in range(3)), terms["kl"])
    assert (terms["kl"] >= 0).all()
    torch.testing.assert_close(model.latent_kl(x).sum(-1), terms["kl"])
    _, logvar = model.decode(torch.zeros(4, 3))
    assert logvar.shape == ((4, 2) if decoder_variance == "diagonal" else (4, 1))


def test_iwae_1_is_the_elbo_estimator(trained):
    model, x = trained
    x = x[:200]
    with torch.no_grad():
        # same noise: IWAE_1 is exactly the single-sample ELBO with a Monte-Carlo KL
        torch.manual_seed(1)
        iwae1 = model.iwae(x, 1)
        torch.manual_seed(1)
        mu_z, logvar_z = model.encode(x)
        z = mu_z + torch.exp(0.5 * logvar_z) * torch.randn_like(mu_z)
        mu_x, logvar_x = model.decode(z)
        normal_x = torch.distributions.Normal(mu_x, torch.exp(0.5 * logvar_x))
        q = torch.distributions.Normal(mu_z, torch.exp(0.5 * logvar_z))
        prior = torch.distributions.Normal(torch.zeros_like(z), torch.ones_like(z))
        elbo_mc = (normal_x.log_prob(x) + prior.log_prob(z) - q.log_prob(z)).sum(-1)
        torch.testing.assert_close(iwae1, elbo_mc, rtol=1e-5, atol=1e-4)
        # and in expectation it equals the analytic-KL ELBO that nll() estimates
        reps = 200
        iwae1 = torch.stack([model.iwae(x, 1) for _ in range(reps)]).mean(0)
        neg_nll = torch.stack([-model.nll(x) for _ in range(reps)]).mean(0)
    diff = iwae1 - neg_nll
    se = diff.std() / math.sqrt(len(diff))
    assert abs(diff.mean()) < 4 * se + 1e-3, (diff.mean(), se)


def test_iwae_grows_with_k_and_bounds_the_elbo(trained):
    model, x = trained
    torch.manual_seed(2)
    with torch.no_grad():
        # per example, nats; each averaged over 10 independent estimates to cut the noise
        elbo = torch.stack([-model.nll(x) for _ in range(10)]).mean(0)
        bounds = {
            k: torch.stack([model.iwae(x, k) for _ in range(10)]).mean(0) for k in (1, 10, 100)
        }
    for lower, higher in [(1, 10), (10, 100)]:
        gain = bounds[higher] - bounds[lower]
        se = gain.std() / math.sqrt(len(gain))
        assert gain.mean() > 3 * se, (lower, higher, gain.mean(), se)  # significantly ≥
    for k in (10, 100):
        gain = bounds[k] - elbo
        assert gain.mean() > 3 * gain.std() / math.sqrt(len(gain)), (k, gain.mean())
    # and a bound still: the true law's mean log p on these points (≈ -1.32 nats) is above it
    assert bounds[100].mean() < true_log_prob(x.numpy(), 3).mean()


def test_test_epoch_logs_iwae_and_elbo_on_the_first_points():
    seen: list[torch.Tensor] = []

    class Recording(VAE2D):
        def log_weights(self, x, k):
            if k == self.iwae_k:
                seen.append(x.clone())
            return super().log_weights(x, k)

    torch.manual_seed(0)
    model = Recording(hidden_sizes=[8], iwae_k=7, iwae_points=25, eval_samples=3)
    x = torch.randn(60, 2)
    trainer = pl.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    (result,) = trainer.test(model, dataloaders=DataLoader(x, batch_size=10), verbose=False)
    assert len(seen) == 1 and torch.equal(seen[0], x[:25])  # across batches of 10
    assert result["test/iwae7_bpd"] <= result["test/elbo7_bpd"]  # logmeanexp ≥ mean, per point
    assert result["test/kl_dim0_bpd"] + result["test/kl_dim1_bpd"] == pytest.approx(
        result["test/kl_bpd"], rel=1e-5
    )
    assert result["test/bpd"] == pytest.approx(
        result["test/kl_bpd"] + result["test/recon_bpd"], rel=1e-5
    )


def test_sample_shapes_and_noise():
    torch.manual_seed(0)
    model = VAE2D(hidden_sizes=[8, 8])
    noisy, means = model.sample(50), model.sample(50, decoder_noise=False)
    assert noisy.shape == means.shape == (50, 2) and noisy.dtype == torch.float32
    assert not torch.equal(noisy, means)


@pytest.mark.parametrize("scale", [1e4, 1e8])
def test_extreme_inputs_give_finite_losses_and_gradients(scale):
    model = VAE2D(hidden_sizes=[16, 16])
    x = torch.tensor([[scale, -scale], [0.0, 0.0]])
    loss = model.loss_terms(x)["nll"].mean()
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    assert torch.isfinite(model.iwae(x, 5)).all()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"decoder_variance": "full"}, "decoder_variance must be one of"),
        ({"latent_dim": 0}, "latent_dim must be a positive integer"),
        ({"iwae_k": 0}, "iwae_k must be a positive integer"),
        ({"lr_final_factor": 0.0}, "lr_final_factor must be in"),
        ({"lr": -1.0}, "lr must be > 0"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ModelConfigError, match=message):
        VAE2D(**kwargs)


def test_wrong_batch_shape_is_named():
    with pytest.raises(ValueError, match=r"FloatTensor\[B, 2\]"):
        VAE2D().nll(torch.zeros(4, 3))


def test_cosine_schedule_reaches_the_final_factor(tmp_path):
    model = VAE2D(hidden_sizes=[8], lr=0.01, lr_final_factor=0.1)
    data = Toy2DDataModule(dataset=1, count=2000, batch_size=100)
    trainer = pl.Trainer(
        default_root_dir=tmp_path,
        max_epochs=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=1,
    )
    trainer.fit(model, datamodule=data)
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.001, rel=1e-6)


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_configs_run(config, tmp_path, monkeypatch):
    from train import main

    monkeypatch.setattr(sys, "argv", ["train.py"])
    main(
        [
            "fit",
            "--config",
            str(config),
            f"--trainer.default_root_dir={tmp_path}",
            "--trainer.fast_dev_run=2",
            "--trainer.enable_progress_bar=false",
        ]
    )
    assert {p.stem for p in (tmp_path / "figures").glob("*.png")} == {
        "vae_samples",
        "latent_scatter",
        "loss_curves",
    }


def test_there_are_five_hw3_configs():
    assert [c.stem for c in CONFIGS] == [
        "vae_data1_diagonal",
        "vae_data1_isotropic",
        "vae_data2_diagonal",
        "vae_data2_isotropic",
        "vae_data3",
    ]
