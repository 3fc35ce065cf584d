"""The convolutional VAE of HW3 §2: shapes, the bits/dim by hand, the priors, bad input."""

from __future__ import annotations

import math
import warnings

import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.distributions import Categorical, MixtureSameFamily
from torch.utils.data import DataLoader

from ar_models.errors import ModelConfigError
from callbacks.prior_fit import FitPrior
from tests.conftest import quiet_trainer
from vae_models.conv_vae import ConvVAE
from vae_models.gaussians import soft_clamp

D = 3 * 32 * 32


def tiny(prior: str = "normal", side: int = 8, **kwargs) -> ConvVAE:
    torch.manual_seed(0)
    return ConvVAE(
        prior=prior,
        latent_shape=(2, side, side),
        n_filters=8,
        n_layers=1,
        prior_filters=4,
        **kwargs,
    )


def images(n: int = 2) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, 32, 32), generator=torch.Generator().manual_seed(1))


def log_normal(v: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Elementwise log N(v; μ, exp(logvar)), written out."""
    return -0.5 * math.log(2 * math.pi) - 0.5 * logvar - (v - mu) ** 2 / (2 * torch.exp(logvar))


@pytest.mark.parametrize("prior", ["normal", "flow"])
def test_bits_per_dim_by_hand(prior):
    """bits/dim = [−log N(y; μ(z), σ²) + D ln 256 + log q(z|y) − log p(z)] / (D ln 2), one σ² per
    colour channel, with the random numbers u then the z noise drawn in the model's order."""
    model = tiny(prior).eval()
    with torch.no_grad():
        model.decoder_logvar.copy_(torch.tensor([-3.0, -4.0, -5.0]).view(1, 3, 1, 1))
    x = images()
    torch.manual_seed(123)
    bpd = model.to_bpd(model.nll(x))

    torch.manual_seed(123)
    with torch.no_grad():
        y = (x.float() + torch.rand(x.shape)) / 256.0
        mu_z, logvar_z = model.encode(y)
        z = mu_z + torch.exp(0.5 * logvar_z) * torch.randn(mu_z.shape)
        mu_y = model.decoder(z)  # one log σ² per colour channel, for every pixel and image
        logvar_y = torch.tensor([-3.0, -4.0, -5.0]).view(1, 3, 1, 1).expand_as(mu_y)
        logvar_y = soft_clamp(logvar_y, -14.0, 4.0)
        recon = -log_normal(y, mu_y, logvar_y).sum((1, 2, 3)) + D * math.log(256)
        if prior == "normal":
            kl = (0.5 * (logvar_z.exp() + mu_z**2 - 1 - logvar_z)).sum((1, 2, 3))
        else:
            kl = log_normal(z, mu_z, logvar_z).sum((1, 2, 3)) - model.prior.log_prob(z)
        expected = (recon + kl) / (D * math.log(2))
    assert torch.allclose(bpd, expected, rtol=1e-5)
    assert torch.all(bpd > 0)


@pytest.mark.parametrize("prior", ["normal", "flow"])
def test_terms_shapes_and_sums(prior):
    model = tiny(prior)
    terms = model.loss_terms(images())
    assert set(terms) == {"nll", "kl", "recon", "kl_ch0", "kl_ch1"}
    assert all(t.shape == (2,) for t in terms.values())
    assert torch.allclose(terms["nll"], terms["kl"] + terms["recon"])
    assert torch.allclose(terms["kl"], terms["kl_ch0"] + terms["kl_ch1"], rtol=1e-4, atol=1e-3)
    terms["nll"].mean().backward()
    if prior != "normal":  # a learned prior is trained through the bound
        grads = [p.grad for p in model.prior.parameters() if p.grad is not None]
        assert sum(g.abs().sum() for g in grads) > 0


@pytest.mark.parametrize("prior", ["normal", "flow", "fitted"])
def test_sample_and_hooks(prior):
    model = tiny(prior).eval()
    samples = model.sample(3, decoder_noise=False)
    assert samples.shape == (3, 3, 32, 32) and samples.dtype == torch.long
    assert samples.min() >= 0 and samples.max() <= 255
    noisy = model.sample(2)  # the contract: draws of the full model
    assert noisy.shape == (2, 3, 32, 32)
    z = model.posterior_mean(images())
    assert z.shape == (2, 2, 8, 8)
    assert model.decode_to_pixels(z).shape == (2, 3, 32, 32)
    assert model.n_dims == D and model.n_categories == 256


def test_quantize_is_the_bin_of_y():
    y = torch.tensor([-0.1, 0.0, 0.5 / 256, 1.0 / 256, 0.999, 1.0, 1.7])
    assert ConvVAE.quantize(y).tolist() == [0, 0, 0, 1, 255, 255, 255]


def test_bad_input_and_config():
    model = tiny()
    with pytest.raises(ValueError, match="ConvVAE expects"):
        model.nll(images().float())
    with pytest.raises(ValueError, match="ConvVAE expects"):
        model.nll(torch.full((1, 3, 32, 32), 256))
    with pytest.raises(ModelConfigError, match="prior"):
        ConvVAE(prior="vamp")
    with pytest.raises(ModelConfigError, match="prior_components must be a positive integer"):
        ConvVAE(prior="fitted", prior_components=0)
    with pytest.raises(ModelConfigError, match="prior_components > 1 needs a latent vector"):
        ConvVAE(prior="flow", prior_components=3)
    with pytest.raises(ModelConfigError, match="n_filters"):
        ConvVAE(n_filters=30)
    with pytest.raises(ModelConfigError, match="prior_training must be one of"):
        ConvVAE(prior_training="image")


@pytest.mark.parametrize("side", [8, 1])
@pytest.mark.parametrize("prior", ["normal", "flow", "fitted"])
def test_latent_shapes(side, prior):
    """``latent_shape`` (C_z, s, s): the posterior, the prior's samples and the per-channel KL
    terms have that shape and still add up to the bound."""
    model = tiny(prior, side)
    x = images(3)
    assert model.latent_shape == (2, side, side)
    assert model.posterior_mean(x).shape == (3, 2, side, side)
    assert model.prior.sample(4).shape == (4, 2, side, side)
    assert model.sample(2).shape == (2, 3, 32, 32)
    terms = model.loss_terms(x)
    assert torch.allclose(terms["kl_ch0"] + terms["kl_ch1"], terms["kl"], atol=1e-4)
    assert torch.allclose(terms["recon"] + terms["kl"], terms["nll"])
    # a global latent (s = 1) is read and written by linear layers, not by 1×1 convolutions
    linear = [isinstance(m, nn.Linear) for net in (model.encoder, model.decoder) for m in net]
    assert sum(linear) == (2 if side == 1 else 0)


def test_bad_latent_shape():
    for shape in ((2, 3, 3), (2, 16, 16), (2, 8, 4), (2, 8), (0, 8, 8)):
        with pytest.raises(ModelConfigError, match="latent_shape must be|latent_channels"):
            ConvVAE(latent_shape=shape)


def test_free_bits_and_warmup_objective():
    """The training loss is [mean recon + w_t · Σ_j max(λ, mean kl_j)] / D (vae_models.base):
    at step 0 with a warm-up, w_0 = 0 and the loss is the reconstruction term alone; without one
    w_t = β."""
    cases = [
        (dict(free_bits=3.0), 1.0),
        (dict(kl_warmup_steps=10), 0.0),
        (dict(beta=2.5), 2.5),
        (dict(beta=0.5, free_bits=3.0), 0.5),
    ]
    for kwargs, weight in cases:
        model = tiny(**kwargs)
        x = images(4)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # self.log without a trainer
            torch.manual_seed(0)
            loss = model.training_step(x, 0)
        torch.manual_seed(0)
        terms = model.loss_terms(x)
        kl_j = torch.stack([terms["kl_ch0"], terms["kl_ch1"]], 1).mean(0)
        expected = terms["recon"].mean() + weight * kl_j.clamp(min=kwargs.get("free_bits", 0)).sum()
        assert loss.item() == pytest.approx((expected / D).item(), rel=1e-5)
    with pytest.raises(ModelConfigError, match="free_bits"):
        ConvVAE(free_bits=-1.0)
    with pytest.raises(ModelConfigError, match="beta must be a finite number >= 0"):
        ConvVAE(beta=-1.0)
    with pytest.raises(ModelConfigError, match="kl_warmup_steps"):
        ConvVAE(kl_warmup_steps=1.5)


class FitRecorder(pl.Callback):
    """Whether the fitted prior is fitted at the end of each validation epoch."""

    def __init__(self) -> None:
        self.fitted: list[bool] = []

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self.fitted.append(pl_module.prior.is_fitted)


def test_fitted_prior_is_normal_until_fitted_then_the_mixture():
    """prior="fitted" gives the N(0, I) model's terms (same weights, same random numbers) until
    its fit; then the bound is the one-sample KL against the fitted mixture."""
    normal = tiny("normal", 1)
    fitted = tiny("fitted", 1, prior_components=2)
    fitted.load_state_dict(normal.state_dict(), strict=False)
    x = images(3)
    for seed in (0, 1):
        torch.manual_seed(seed)
        expected = normal.loss_terms(x)
        torch.manual_seed(seed)
        got = fitted.loss_terms(x)
        assert all(torch.allclose(got[k], expected[k]) for k in expected)
    torch.manual_seed(0)
    fitted.prior.fit(torch.randn(40, 2, 1, 1) * 0.5 + 1.0)
    mixture = fitted.prior
    cov = mixture.scale_tril @ mixture.scale_tril.transpose(1, 2)
    components = torch.distributions.MultivariateNormal(mixture.means, covariance_matrix=cov)
    log_pz = MixtureSameFamily(Categorical(logits=mixture.log_weights), components)
    torch.manual_seed(2)
    terms = fitted.loss_terms(x)
    torch.manual_seed(2)
    with torch.no_grad():
        y = (x.float() + torch.rand(x.shape)) / 256.0
        mu_z, logvar_z = fitted.encode(y)
        z = mu_z + torch.exp(0.5 * logvar_z) * torch.randn(mu_z.shape)
        kl = log_normal(z, mu_z, logvar_z).sum((1, 2, 3)) - log_pz.log_prob(z.flatten(1))
    assert torch.allclose(terms["kl"], kl, rtol=1e-4, atol=1e-2)
    assert torch.allclose(terms["kl_ch0"] + terms["kl_ch1"], terms["kl"], atol=1e-2)
    assert fitted.prior.sample(3).shape == (3, 2, 1, 1)
    with pytest.raises(ModelConfigError, match="no parameters to fit"):
        normal.prior.fit_to_posteriors(torch.randn(4, 2, 2, 1, 1), steps=1)


def test_prior_is_fitted_in_the_last_epochs_and_kept_in_checkpoints(tmp_path):
    """With FitPrior(last_epochs=F) the mixture is fitted at the validation start of the last F
    epochs, from the posterior means of that epoch's training batches, and a checkpoint saved
    afterwards loads with the same fitted prior."""
    model = tiny("fitted", 1, prior_components=2)
    batches = [images(8) for _ in range(2)]
    recorder = FitRecorder()
    trainer = quiet_trainer(tmp_path, max_epochs=3, callbacks=[FitPrior(last_epochs=1), recorder])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few batches, no workers
        trainer.fit(model, DataLoader(batches, batch_size=None), DataLoader(batches[:1], None))
    assert recorder.fitted == [False, False, True]
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    loaded = ConvVAE.load_from_checkpoint(path)
    assert loaded.prior.is_fitted
    assert torch.equal(loaded.prior.means, model.prior.means)
