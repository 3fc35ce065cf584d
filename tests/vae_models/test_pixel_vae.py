"""PixelVAE: the decoder's receptive field, the bound and its terms, cached and naive sampling,
bad input, training on the stand-in data, checkpoints."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from ar_models.errors import ModelConfigError
from ar_models.sampling import CropStepper
from callbacks.sample_grid import SampleGrid
from datamodules.svhn import SVHNDataModule
from vae_models import dmol
from vae_models.gaussians import soft_clamp
from vae_models.pixel_decoder import (
    CachedPixelCNN,
    ConditionalPixelCNN,
    layout,
    receptive_field,
)
from vae_models.pixel_vae import PixelVAE

D = 3 * 32 * 32
CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "hw3"


def tiny(prior: str = "normal", **kwargs) -> PixelVAE:
    torch.manual_seed(0)
    options = dict(
        latent_shape=(2, 8, 8),
        n_filters=8,
        n_layers=1,
        pixel_filters=8,
        receptive_radius=4,
        n_mixtures=2,
    )
    options.update(kwargs)
    return PixelVAE(prior=prior, **options)


def images(n: int = 2, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, 32, 32), generator=torch.Generator().manual_seed(seed))


def closed_form_field(p0: int, p: int, n_layers: int) -> torch.Tensor:
    """The module docstring's description: row 0 dc = −R..−1; row −j dc = −R..
    min(R, max(p0 + (j−1)p, jp − 1))."""
    radius = p0 + n_layers * p
    field = torch.zeros(radius + 1, 2 * radius + 1, dtype=torch.bool)
    field[radius, :radius] = True
    for j in range(1, radius + 1):
        right = min(radius, max(p0 + (j - 1) * p, j * p - 1)) if n_layers else p0
        field[radius - j, : radius + right + 1] = True
    return field


def decoder_net(radius: int, n_filters: int = 6, pixel_dropout: float = 0.0):
    """A seeded decoder on 4 conditioning channels; its mean skip (zero at the start) is given
    random weights, so that it reads the pixels."""
    torch.manual_seed(0)
    net = ConditionalPixelCNN(4, n_filters, radius, n_mixtures=2, pixel_dropout=pixel_dropout)
    torch.nn.init.normal_(net.mean_skip.weight, std=0.3)
    torch.nn.init.normal_(net.mean_cond.weight, std=0.3)
    return net


@pytest.mark.parametrize(
    "first_kernel, kernel, n_layers", [(5, 3, 2), (3, 3, 0), (3, 3, 3), (3, 5, 1), (7, 1, 2)]
)
def test_receptive_field_closed_form(first_kernel, kernel, n_layers):
    expected = closed_form_field(first_kernel // 2, kernel // 2, n_layers)
    assert torch.equal(receptive_field(first_kernel, kernel, n_layers), expected)


@pytest.mark.parametrize(
    "radius, pixels",
    [(4, [(10, 13), (0, 5), (1, 31), (31, 0)]), (1, [(7, 7)]), (2, [(9, 20), (2, 1)])],
)
def test_decoder_reads_exactly_its_receptive_field(radius, pixels):
    """Gradients of the decoder output at (r, c) with respect to its input pixels: non-zero on
    the configured field (clipped at the image's edges), zero everywhere else, in particular at
    (r, c) and every pixel after it in raster order."""
    net = decoder_net(radius).double()
    first_kernel, n_layers = layout(radius)
    assert net.receptive_radius == radius == first_kernel // 2 + n_layers
    field = receptive_field(first_kernel, 3, n_layers)
    v = torch.rand(1, 3, 32, 32, dtype=torch.float64, requires_grad=True)
    c = torch.randn(1, 4, 32, 32, dtype=torch.float64)
    out = net(v, c)
    for row, col in pixels:
        (grad,) = torch.autograd.grad(out[0, :, row, col].sum(), v, retain_graph=True)
        seen = grad[0].abs().sum(0) > 0  # [32, 32]
        expected = torch.zeros(32, 32, dtype=torch.bool)
        for dr, dc in field.nonzero().tolist():
            r, cc = row + dr - radius, col + dc - radius
            if 0 <= r < 32 and 0 <= cc < 32:
                expected[r, cc] = True
        assert torch.equal(seen, expected), (row, col)
        assert not seen.flatten()[row * 32 + col :].any()


def test_model_decoder_ignores_pixels_at_and_after_i():
    """Changing the pixels at and after (r, c) (all channels) leaves the DMOL parameters at
    (r, c) unchanged: the same pixel's channels enter only through the DMOL coefficients."""
    model = tiny().eval()
    x = images(1)
    z = torch.randn(1, *model.latent_shape)
    row, col = 12, 9
    changed = x.clone().flatten(2)
    changed[:, :, row * 32 + col :] = torch.randint(0, 256, changed[:, :, row * 32 + col :].shape)
    changed = changed.view_as(x)
    with torch.no_grad():
        a, b = model.decoder_params(x, z), model.decoder_params(changed, z)
    assert torch.equal(a[:, :, row, col], b[:, :, row, col])
    assert not torch.equal(a[:, :, row, col + 1], b[:, :, row, col + 1])


@pytest.mark.parametrize("prior", ["normal", "flow"])
def test_bits_per_dim_by_hand(prior):
    """bits/dim = [−Σ_i log P(x_i | x_N(i), z) + log q(z|x) − log p(z)] / (D ln 2), with the z
    noise drawn in the model's order; no discretisation term (P is over 8-bit values)."""
    model = tiny(prior).eval()
    x = images()
    torch.manual_seed(123)
    bpd = model.to_bpd(model.nll(x))
    torch.manual_seed(123)
    with torch.no_grad():
        mu_z, logvar_z = model.encoder(2 * x.float() / 255 - 1).chunk(2, dim=1)
        logvar_z = model.encode(x)[1]
        z = mu_z + torch.exp(0.5 * logvar_z) * torch.randn(mu_z.shape)
        params = model.pixelcnn(2 * x.float() / 255 - 1, model.cond_net(z))
        recon = -dmol.log_prob(x, params).sum((1, 2))
        if prior == "normal":
            kl = (0.5 * (logvar_z.exp() + mu_z**2 - 1 - logvar_z)).sum((1, 2, 3))
        else:
            log_q = -0.5 * (math.log(2 * math.pi) + logvar_z + (z - mu_z) ** 2 / logvar_z.exp())
            kl = log_q.sum((1, 2, 3)) - model.prior.log_prob(z)
        expected = (recon + kl) / (D * math.log(2))
    assert torch.allclose(bpd, expected, rtol=1e-5)
    assert torch.all(bpd > 0)


@pytest.mark.parametrize("prior", ["normal", "flow"])
def test_terms_add_up_and_kl_is_non_negative(prior):
    model = tiny(prior)
    terms = model.loss_terms(images(3))
    assert set(terms) == {"nll", "kl", "recon", "kl_ch0", "kl_ch1"}
    assert all(t.shape == (3,) for t in terms.values())
    assert torch.allclose(terms["nll"], terms["recon"] + terms["kl"])
    assert torch.allclose(terms["kl"], terms["kl_ch0"] + terms["kl_ch1"], rtol=1e-4, atol=1e-3)
    assert (terms["recon"] > 0).all()  # −log of a probability
    if prior == "normal":
        assert (terms["kl"] >= 0).all()
    terms["nll"].mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_iwae_is_above_the_elbo_of_the_same_samples():
    model = tiny().eval()
    x = images(2)
    torch.manual_seed(0)
    with torch.no_grad():
        log_w = model.log_weights(x, 8)  # [8, 2]
        torch.manual_seed(0)
        iwae = model.iwae(x, 8)
        elbo = -model.nll(x)
    assert log_w.shape == (8, 2)
    assert torch.allclose(iwae, torch.logsumexp(log_w, 0) - math.log(8))
    assert (iwae >= log_w.mean(0)).all()  # Jensen, on the same draws
    # the Monte-Carlo ELBO and the analytic-KL ELBO agree up to sampling noise (< 0.05 bits/dim)
    assert ((log_w.mean(0) - elbo).abs() / (D * math.log(2)) < 0.05).all()


def test_cached_step_equals_the_full_pass():
    net = decoder_net(4, n_filters=8)
    v = 2 * torch.rand(3, 3, 32, 32) - 1
    c = torch.randn(3, 4, 32, 32)
    with torch.no_grad():
        full = net(v, c)
        stepper = CachedPixelCNN(net, c)
        naive = CropStepper(net, v, net.receptive_radius, c)
        for row in range(32):
            for col in range(32):
                step = stepper.step(row, col)
                assert torch.allclose(step, full[:, :, row, col], atol=1e-5), (row, col)
                crop = naive.step(row, col)
                assert torch.allclose(crop, full[:, :, row, col], atol=1e-5), (row, col)
                stepper.write_input(row, col, v[:, :, row, col])


def test_cached_and_naive_samples_are_the_same_images():
    model = tiny().double().eval()
    torch.nn.init.normal_(model.pixelcnn.mean_skip.weight, std=0.3)
    torch.nn.init.normal_(model.pixelcnn.mean_cond.weight, std=0.3)
    a = model.sample(2, generator=torch.Generator().manual_seed(5))
    b = model.sample(2, generator=torch.Generator().manual_seed(5), cached=False)
    assert torch.equal(a, b)


@pytest.mark.parametrize("prior", ["normal", "flow"])
def test_sampling_shape_range_and_reproducibility(prior):
    model = tiny(prior).eval()
    a = model.sample(3, generator=torch.Generator().manual_seed(0))
    b = model.sample(3, generator=torch.Generator().manual_seed(0))
    assert a.shape == (3, 3, 32, 32) and a.dtype == torch.long
    assert a.min() >= 0 and a.max() <= 255
    assert torch.equal(a, b)
    assert not torch.equal(a, model.sample(3, generator=torch.Generator().manual_seed(1)))
    # the callbacks' hooks
    grid = SampleGrid(n_samples=2, seed=0).samples(model)
    assert grid.shape == (2, 3, 32, 32)
    z = model.posterior_mean(images(2))
    assert z.shape == (2, 2, 8, 8)
    assert model.decode_to_pixels(z).shape == (2, 3, 32, 32)
    assert model.n_dims == D and model.n_categories == 256 and model.receptive_radius == 4


def test_bad_input_and_config():
    model = tiny()
    with pytest.raises(ValueError, match="PixelVAE expects"):
        model.nll(images().float())
    with pytest.raises(ValueError, match=r"PixelVAE expects .* got values in 256..256"):
        model.nll(torch.full((1, 3, 32, 32), 256))
    with pytest.raises(ValueError, match=r"PixelVAE expects .* got values in -1..0"):
        model.nll(torch.full((1, 3, 32, 32), -1).index_fill_(3, torch.tensor([1]), 0))
    with pytest.raises(ValueError, match=r"PixelVAE expects .* got shape \(2, 3, 28, 28\)"):
        model.nll(torch.zeros(2, 3, 28, 28, dtype=torch.long))
    for bad, message in [
        (dict(prior="vamp"), "prior"),
        (dict(n_filters=30), "n_filters must be divisible by 4"),
        (dict(receptive_radius=0), "receptive_radius must be a positive integer"),
        (dict(receptive_radius=2.5), "receptive_radius must be a positive integer"),
        (dict(n_mixtures=0), "n_mixtures must be a positive integer"),
        (dict(pixel_filters=1), "pixel_filters must be an integer >= 2"),
        (dict(free_bits=-0.5), "free_bits must be a finite number >= 0"),
        (dict(aux_weight=-1.0), "aux_weight must be a finite number >= 0"),
        (dict(lr_final_factor=0.0), "lr_final_factor must be in"),
        (dict(lr=0.0), "lr must be > 0"),
    ]:
        with pytest.raises(ModelConfigError, match=message):
            tiny(**bad)


def test_extreme_decoder_outputs_give_finite_losses():
    """DMOL parameters of ±1e30 (logits, means, log-scales, coefficients) reach the loss."""
    model = tiny().eval()
    out = model.pixelcnn.out
    with torch.no_grad():
        signs = torch.tensor([(-1.0) ** i for i in range(out.bias.numel())])
        out.bias.copy_(signs * 1e30)
        out.weight.zero_()
    nll = model.nll(images())
    assert torch.isfinite(nll).all() and (nll > 0).all()
    nll.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_free_bits_objective():
    """With free bits λ the training loss is [mean recon + Σ_j max(λ, mean kl_j)] / D while the
    logged terms stay the true bound."""
    model = tiny(free_bits=2.0)
    x = images(4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log without a trainer
        torch.manual_seed(0)
        loss = model.training_step(x, 0)
    torch.manual_seed(0)
    terms = model.loss_terms(x)
    kl_j = torch.stack([terms["kl_ch0"], terms["kl_ch1"]], 1).mean(0)
    expected = (terms["recon"].mean() + kl_j.clamp(min=2.0).sum()) / D
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert (kl_j < 2.0).any()  # the clamp is active at the start


def test_kl_warmup_objective():
    """With a KL warm-up the weight is min(1, step / kl_warmup_steps): 0 at step 0."""
    model = tiny(kl_warmup_steps=100)
    x = images(2)
    assert model.kl_weight() == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log without a trainer
        torch.manual_seed(0)
        loss = model.training_step(x, 0)
    torch.manual_seed(0)
    terms = model.loss_terms(x)
    assert loss.item() == pytest.approx((terms["recon"].mean() / D).item(), rel=1e-5)


def test_auxiliary_decoder_objective():
    """With aux_weight α the training loss is [mean −ELBO + α · mean aux] / D, aux =
    −log N(y; μ_aux(c), σ²_aux) + D ln 256 with y = (x + u)/256 and the auxiliary head on the
    same c = c(z) (random numbers: z noise, then u); the bound does not read it. σ²_aux is one
    learned number per colour channel."""
    n_variances = 3
    model = tiny(aux_weight=0.5)
    assert model.aux_head.logvar.numel() == n_variances
    with torch.no_grad():  # distinct values, so that a wrong broadcast would change the loss
        model.aux_head.logvar.copy_(torch.linspace(-3.0, -2.0, n_variances).view(1, -1, 1, 1))
    x = images(4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log without a trainer
        torch.manual_seed(0)
        loss = model.training_step(x, 0)
    torch.manual_seed(0)
    mu_z, logvar_z = model.encode(x)
    z = mu_z + torch.exp(0.5 * logvar_z) * torch.randn(mu_z.shape)
    cond = model.conditioning(z)
    recon = -dmol.log_prob(x, model.pixelcnn(model.scale(x), cond)).flatten(1).sum(-1)
    kl = (0.5 * (logvar_z.exp() + mu_z**2 - 1 - logvar_z)).sum((1, 2, 3))
    y = (x.float() + torch.rand(x.shape)) / 256
    mu_y = model.aux_head.mean(cond)
    logvar_y = soft_clamp(model.aux_head.logvar, -14.0, 4.0)
    log_p = -0.5 * (math.log(2 * math.pi) + logvar_y + (y - mu_y) ** 2 / logvar_y.exp())
    aux = -log_p.sum((1, 2, 3)) + D * math.log(256)
    expected = ((recon + kl).mean() + 0.5 * aux.mean()) / D
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    model.zero_grad()
    model.nll(x).mean().backward()  # the bound itself never reads the auxiliary head
    assert model.aux_head.mean.weight.grad is None and model.aux_head.logvar.grad is None
    assert tiny().aux_head is None and "aux_head.weight" not in tiny().state_dict()


@pytest.fixture(scope="module")
def stand_in_batches() -> list[torch.Tensor]:
    data = SVHNDataModule(batch_size=32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the stand-in warning
        data.setup("fit")
    loader = data.train_dataloader()
    batches = []
    for batch in loader:
        batches.append(batch[0])
        if len(batches) == 4:
            break
    return batches


def test_a_few_steps_on_the_stand_in_lower_the_bound(stand_in_batches):
    model = tiny(lr=3e-3)
    optimizer = model.configure_optimizers()
    held_out = stand_in_batches[-1]

    def evaluate() -> float:
        model.eval()
        torch.manual_seed(0)
        with torch.no_grad():
            value = model.to_bpd(model.nll(held_out)).mean().item()
        model.train()
        return value

    before = evaluate()
    for step in range(15):
        x = stand_in_batches[step % 3]
        loss = model.nll(x).mean() / model.n_dims
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = evaluate()
    assert after < before - 0.2, (before, after)


def test_checkpoint_round_trip(tmp_path, stand_in_batches):
    model = tiny(prior="flow", n_mixtures=3, free_bits=0.5)
    trainer = pl.Trainer(
        default_root_dir=tmp_path,
        max_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(model, DataLoader(stand_in_batches[:1], batch_size=None))
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    loaded = PixelVAE.load_from_checkpoint(path).eval()
    assert loaded.hparams == model.hparams and loaded.free_bits == 0.5
    model.eval()
    x = stand_in_batches[0][:2]
    torch.manual_seed(0)
    expected = model.nll(x)
    torch.manual_seed(0)
    assert torch.equal(loaded.nll(x), expected)


def test_pixel_dropout_hides_inputs_in_training_only():
    """With pixel_dropout p the training-mode decoder at (r, c) reads a random part of its field
    (about 1 − p of it, never outside it, never at or after (r, c)); in evaluation it reads
    the whole field and is deterministic."""
    net = decoder_net(4, pixel_dropout=0.5).double()
    field = receptive_field(5, 3, 2)
    radius = net.receptive_radius
    row, col = 12, 14
    expected = torch.zeros(32, 32, dtype=torch.bool)
    for dr, dc in field.nonzero().tolist():
        expected[row + dr - radius, col + dc - radius] = True
    c = torch.randn(1, 4, 32, 32, dtype=torch.float64)

    def seen_pixels() -> torch.Tensor:
        v = torch.rand(1, 3, 32, 32, dtype=torch.float64, requires_grad=True)
        (grad,) = torch.autograd.grad(net(v, c)[0, :, row, col].sum(), v)
        return grad[0].abs().sum(0) > 0

    net.train()
    shares = []
    for _ in range(40):
        seen = seen_pixels()
        assert not (seen & ~expected).any()
        shares.append(seen.sum().item() / expected.sum().item())
    assert 0.4 < sum(shares) / len(shares) < 0.6
    net.eval()
    assert torch.equal(seen_pixels(), expected)
    v = torch.rand(1, 3, 32, 32, dtype=torch.float64)
    assert torch.equal(net(v, c), net(v, c))
    with pytest.raises(ModelConfigError, match="pixel_dropout"):
        tiny(pixel_dropout=1.0)


def test_global_latent():
    """``latent_shape`` (C, 1, 1): a latent vector, sampled and decoded like the 8 × 8 one."""
    model = tiny(latent_shape=(2, 1, 1))
    x = images(2)
    assert model.posterior_mean(x).shape == (2, 2, 1, 1)
    assert torch.isfinite(model.nll(x)).all()
    assert model.sample(1, generator=torch.Generator().manual_seed(0)).shape == (1, 3, 32, 32)
