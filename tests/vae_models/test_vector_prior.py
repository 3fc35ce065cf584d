"""The autoregressive prior over a latent vector (MADE; the affine flow and mixture conditionals):
log-determinant, autoregressive structure over the channels, inverse, normalisation, samples, its
place in the two VAEs, and ConvVAE's ``prior_training="posterior"``."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch import nn
from torch.distributions import Categorical, MixtureSameFamily, Normal
from torch.utils.data import DataLoader

from ar_models.errors import ModelConfigError
from callbacks.prior_fit import FitPrior
from tests.conftest import quiet_trainer
from vae_models.conv_vae import ConvVAE
from vae_models.flow_prior import AutoregressiveFlowPrior
from vae_models.image_vae import make_prior
from vae_models.pixel_vae import PixelVAE
from vae_models.priors import StandardNormalPrior
from vae_models.vector_prior import VectorARPrior

C = 5
D = 3 * 32 * 32


def random_flow(channels: int = C, n_hidden: int = 2, n_components: int = 1) -> VectorARPrior:
    """A prior with a random last layer, so every conditional depends on z_<d (K = 1: a
    non-identity flow)."""
    torch.manual_seed(0)
    flow = VectorARPrior(channels, hidden=16, n_hidden=n_hidden, n_components=n_components)
    flow = flow.double()
    last = flow.net[-1]
    nn.init.normal_(last.weight, std=0.5)
    nn.init.normal_(last.bias, std=0.5)
    return flow


def test_log_det_matches_autograd_jacobian():
    flow = random_flow()
    z = torch.randn(1, C, 1, 1, dtype=torch.float64)
    jacobian = torch.autograd.functional.jacobian(
        lambda flat: flow(flat.view(1, C, 1, 1))[0].flatten(), z.flatten()
    )
    assert torch.all(jacobian.triu(1) == 0)  # ε_d reads z_≤d only
    _, log_abs_det = torch.linalg.slogdet(jacobian)
    _, log_det = flow(z)
    assert log_det.shape == (1,)
    assert log_det.item() == pytest.approx(log_abs_det.item(), abs=1e-8)
    assert flow.shift_log_scale(z)[1].abs().max() > 0.1  # a non-trivial flow


@pytest.mark.parametrize("n_components", [1, 3])
def test_network_is_autoregressive_over_channels(n_components):
    """Every parameter of conditional d (weights, means, scales) has zero gradient with respect
    to z_≥d, and reads every z_<d."""
    flow = random_flow(n_components=n_components)
    z = torch.randn(1, C, 1, 1, dtype=torch.float64, requires_grad=True)
    params = flow.mixture_params(z)
    for d in range(C):
        for out in params[int(n_components == 1) :]:  # log π is 0 for K = 1
            for k in range(n_components):
                (grad,) = torch.autograd.grad(out[0, k, d], z, retain_graph=True)
                seen = grad.flatten().abs()
                assert torch.all(seen[d:] == 0), f"number {d} reads numbers >= {d}"
                assert torch.all(seen[:d] > 0), f"number {d} ignores an earlier number"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_inverse_inverts_forward(dtype):
    flow = random_flow(8).to(dtype)
    eps = torch.randn(6, 8, 1, 1, dtype=dtype)
    z = flow.inverse(eps)
    assert torch.allclose(flow(z)[0], eps, atol=1e-5)
    assert torch.allclose(flow.inverse(flow(z)[0]), z, atol=1e-5)


def test_log_prob_is_change_of_variables_and_splits_by_number():
    flow = random_flow()
    z = torch.randn(7, C, 1, 1, dtype=torch.float64)
    eps, log_det = flow(z)
    expected = (-0.5 * (math.log(2 * math.pi) + eps**2)).flatten(1).sum(-1) + log_det
    assert torch.allclose(flow.log_prob(z), expected)
    assert torch.allclose(flow.log_prob_elements(z).flatten(1).sum(-1), expected)


def grid_2d() -> tuple[torch.Tensor, float]:
    """A fine grid over [−12, 12]² (points ``[N, 2]``) and the area of one cell."""
    axis = torch.linspace(-12, 12, 801, dtype=torch.float64)
    return torch.cartesian_prod(axis, axis), float(axis[1] - axis[0]) ** 2


@pytest.mark.parametrize("n_hidden, n_components", [(0, 1), (1, 1), (1, 3)])
def test_density_integrates_to_one(n_hidden, n_components):
    """Σ p(z) ΔA over a fine grid of a 2-number latent is 1, and so is Σ p(z_1) Δz_1 of the first
    conditional alone (the chain rule's first factor)."""
    flow = random_flow(2, n_hidden, n_components)
    grid, cell = grid_2d()
    mass = flow.log_prob(grid.view(-1, 2, 1, 1)).exp().sum() * cell
    assert mass.item() == pytest.approx(1.0, abs=1e-4)
    first = flow.log_prob_elements(grid.view(-1, 2, 1, 1))[:, 0].flatten().exp()
    assert (first.view(801, 801)[:, 0].sum() * math.sqrt(cell)).item() == pytest.approx(1, abs=1e-4)


@pytest.mark.parametrize("n_components", [1, 3])
def test_samples_follow_the_density(n_components):
    """Draws have the mean and covariance that the density gives (summed on a grid)."""
    flow = random_flow(2, 1, n_components)
    torch.manual_seed(1)
    z = flow.sample(40_000).flatten(1)
    grid, cell = grid_2d()
    with torch.no_grad():
        weight = flow.log_prob(grid.view(-1, 2, 1, 1)).exp() * cell
    mean = (weight[:, None] * grid).sum(0)
    centred = grid - mean
    cov = (weight[:, None, None] * centred[:, :, None] * centred[:, None, :]).sum(0)
    std = cov.diagonal().sqrt()
    assert torch.all((z.mean(0) - mean).abs() < 4 * std / math.sqrt(len(z)))
    assert torch.allclose(torch.cov(z.T), cov, rtol=0.05, atol=0.05 * float(std.max() ** 2))
    assert not torch.allclose(cov, torch.eye(2, dtype=cov.dtype), atol=0.1)  # not N(0, I)


def test_mixture_conditionals_by_torch_distributions():
    """For K > 1 each element is log Σ_k π_k N(z_d; μ_k, σ_k²) of that conditional."""
    flow = random_flow(n_components=4)
    z = torch.randn(6, C, 1, 1, dtype=torch.float64)
    log_pi, mu, log_sigma = flow.mixture_params(z)
    for d in range(C):
        mixture = MixtureSameFamily(
            Categorical(logits=log_pi[:, :, d]), Normal(mu[:, :, d], log_sigma[:, :, d].exp())
        )
        expected = mixture.log_prob(z[:, d, 0, 0])
        assert torch.allclose(flow.log_prob_elements(z)[:, d, 0, 0], expected)


def test_zero_init_is_standard_normal_and_bad_config():
    flow = VectorARPrior(C, hidden=8)
    z = torch.randn(3, C, 1, 1)
    expected = (-0.5 * (math.log(2 * math.pi) + z**2)).flatten(1).sum(-1)
    assert torch.allclose(flow.log_prob(z), expected, atol=1e-6)
    assert flow.sample(2).shape == (2, C, 1, 1)
    with pytest.raises(ModelConfigError, match="n_hidden"):
        VectorARPrior(C, n_hidden=-1)
    with pytest.raises(ValueError, match="expected z of shape"):
        flow.log_prob(torch.randn(3, C, 2, 2))
    with pytest.raises(ModelConfigError, match="K > 1"):
        VectorARPrior(C, n_components=2).shift_log_scale(z)
    with pytest.raises(ModelConfigError, match="needs a latent vector"):
        ConvVAE(prior="flow", prior_components=3)
    with pytest.raises(ModelConfigError, match="prior_training must be one of"):
        ConvVAE(prior="flow", prior_training="em")


def test_the_vaes_take_the_vector_flow_for_a_global_latent():
    """``prior: flow`` is the flow over positions for a spatial latent and over the channels for a
    1×1 one (which has a single position), in ConvVAE and PixelVAE alike."""
    assert isinstance(make_prior("flow", (4, 8, 8), 8, 1), AutoregressiveFlowPrior)
    assert isinstance(make_prior("flow", (4, 1, 1), 8, 1), VectorARPrior)
    assert isinstance(make_prior("normal", (4, 1, 1), 8, 1), StandardNormalPrior)
    torch.manual_seed(0)
    conv = ConvVAE(
        prior="flow", latent_shape=(3, 1, 1), n_filters=8, n_layers=1, prior_components=2
    )
    pixel = PixelVAE(prior="flow", latent_shape=(3, 1, 1), n_filters=8, n_layers=1, pixel_filters=8)
    for model in (conv, pixel):
        assert isinstance(model.prior, VectorARPrior)
        last = model.prior.net[-1]
        nn.init.normal_(last.weight, std=0.3)
        x = torch.randint(0, 256, (2, 3, 32, 32))
        terms = model.loss_terms(x)
        channels = sum(terms[f"kl_ch{j}"] for j in range(3))
        assert torch.allclose(terms["kl"], channels, atol=1e-4)
        assert torch.allclose(terms["nll"], terms["kl"] + terms["recon"])
        assert model.eval().sample(2).shape == (2, 3, 32, 32)


def tiny_global(prior: str, **kwargs) -> ConvVAE:
    torch.manual_seed(0)
    return ConvVAE(prior=prior, latent_shape=(3, 1, 1), n_filters=8, n_layers=1, **kwargs)


def test_posterior_training_objective_and_gradients():
    """``prior_training="posterior"``: the training loss is [recon + w · Σ_j KL(q_j ‖ N(0, 1))
    − log p(sg(z))] / D; the encoder and decoder get exactly the gradients of the same model with
    p(z) = N(0, I), and the prior those of −log p(z) at the detached draws; the logged bound
    (``loss_terms``) is still the ELBO under the learned prior."""
    options = dict(beta=2.0, prior_filters=8)
    model = tiny_global("flow", prior_training="posterior", prior_components=3, **options)
    normal = tiny_global("normal", **options)
    normal.load_state_dict(model.state_dict(), strict=False)  # the same encoder and decoder
    x = torch.randint(0, 256, (4, 3, 32, 32), generator=torch.Generator().manual_seed(1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log without a trainer
        torch.manual_seed(0)
        loss = model.training_step(x, 0)
        torch.manual_seed(0)
        normal_loss = normal.training_step(x, 0)
    torch.manual_seed(0)
    recon, z, mu_z, logvar_z = model.recon_and_latent(x)
    prior_nll = -model.prior.log_prob(z.detach())
    assert loss.item() == pytest.approx(normal_loss.item() + prior_nll.mean().item() / D, rel=1e-6)
    loss.backward()
    normal_loss.backward()
    for name, p in normal.named_parameters():
        assert torch.allclose(dict(model.named_parameters())[name].grad, p.grad, atol=1e-7), name
    (expected,) = torch.autograd.grad(prior_nll.mean() / D, [model.prior.net[-1].weight])
    assert torch.allclose(model.prior.net[-1].weight.grad, expected)
    assert expected.abs().sum() > 0
    model.eval()
    torch.manual_seed(3)
    terms = model.loss_terms(x)
    torch.manual_seed(3)
    recon, z, mu_z, logvar_z = model.recon_and_latent(x)
    log_q = (-0.5 * (math.log(2 * math.pi) + logvar_z + (z - mu_z) ** 2 / logvar_z.exp())).sum(
        (1, 2, 3)
    )
    assert torch.allclose(terms["kl"], log_q - model.prior.log_prob(z), atol=1e-4)


def test_posterior_training_fits_the_prior_to_the_posterior():
    """Trained by ``prior_training="posterior"`` on a fixed encoder's draws, the prior's
    log-likelihood of them rises well above N(0, I)'s (the fit the option is for)."""
    model = tiny_global("flow", prior_training="posterior", prior_components=3, prior_filters=16)
    head = [m for m in model.encoder if isinstance(m, nn.Linear)][-1]  # → μ, log σ²
    with torch.no_grad():
        head.bias[:3] = torch.tensor([2.0, -1.0, 0.5])  # μ far from 0
    optimiser = torch.optim.Adam(model.prior.parameters(), lr=1e-2)
    x = torch.randint(0, 256, (32, 3, 32, 32), generator=torch.Generator().manual_seed(2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log without a trainer
        for _ in range(150):
            optimiser.zero_grad()
            model.training_step(x, 0).backward()
            optimiser.step()
    z = model.posterior_mean(x)
    normal = (-0.5 * (math.log(2 * math.pi) + z**2)).flatten(1).sum(-1)
    assert (model.prior.log_prob(z) - normal).mean() > 2.0


def test_normal_prior_trains_the_same_either_way():
    """With p(z) = N(0, I) there is no prior to train: ``prior_training="posterior"`` gives the
    training loss of ``"elbo"``."""
    x = torch.randint(0, 256, (4, 3, 32, 32), generator=torch.Generator().manual_seed(1))
    losses = []
    for training in ("elbo", "posterior"):
        model = tiny_global("normal", prior_training=training, beta=2.0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # self.log without a trainer
            torch.manual_seed(0)
            losses.append(model.training_step(x, 0).item())
    assert losses[0] == pytest.approx(losses[1], rel=1e-7)


def test_refit_prior_fits_the_posteriors():
    """``prior.fit_to_posteriors`` lowers −log p(z) at draws of the given posteriors well below
    N(0, I)'s, and is reproducible for a seed."""
    model = tiny_global("flow", prior_training="posterior", prior_components=3, prior_filters=16)
    torch.manual_seed(0)
    mu = torch.randn(200, 3, 1, 1) * 0.3 + torch.tensor([2.0, -1.0, 0.5]).view(1, 3, 1, 1)
    posteriors = torch.stack([mu, torch.full_like(mu, math.log(0.01))], 1)
    start = {name: value.clone() for name, value in model.state_dict().items()}
    losses = model.prior.fit_to_posteriors(posteriors, steps=300, seed=5)
    assert losses[-1] < losses[0] - 3.0
    z = mu + 0.1 * torch.randn_like(mu)
    normal = (-0.5 * (math.log(2 * math.pi) + z**2)).flatten(1).sum(-1)
    with torch.no_grad():
        assert (model.prior.log_prob(z) - normal).mean() > 3.0
    again = tiny_global("flow", prior_training="posterior", prior_components=3, prior_filters=16)
    again.load_state_dict(start)
    assert again.prior.fit_to_posteriors(posteriors, steps=300, seed=5) == losses
    with pytest.raises(ModelConfigError, match="steps must be a positive integer"):
        FitPrior(steps=0)
    with pytest.raises(ModelConfigError, match="no parameters to fit"):
        tiny_global("normal").prior.fit_to_posteriors(posteriors, steps=1)


@pytest.mark.parametrize(
    "limits, last_epoch",
    [(dict(max_epochs=3), 2), (dict(max_epochs=5, max_steps=4), 1), (dict(max_steps=3), 0)],
)
def test_prior_is_refitted_in_the_last_epoch_only(tmp_path, limits, last_epoch):
    """With ``FitPrior(last_epochs=1, steps=S)`` the prior is refitted once, at the validation
    start of the last epoch, to the posteriors of that epoch's training batches; when
    ``max_steps`` ends the fit first, the last complete epoch (2 batches per epoch: 4 steps end
    with epoch 1; 3 steps stop in epoch 1, before its validation, so epoch 0)."""
    model = tiny_global("flow", prior_training="posterior", prior_components=2, prior_filters=8)
    x = torch.randint(0, 256, (8, 3, 32, 32), generator=torch.Generator().manual_seed(1))
    refits: list[int] = []
    original = model.prior.fit_to_posteriors

    def recording(posteriors, steps, seed=0):
        refits.append(model.current_epoch)
        assert posteriors.shape == (16, 2, 3, 1, 1)  # both batches of the epoch
        assert steps == 50
        return original(posteriors, steps, seed)

    model.prior.fit_to_posteriors = recording
    trainer = quiet_trainer(tmp_path, callbacks=[FitPrior(last_epochs=1, steps=50)], **limits)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few batches, no workers
        trainer.fit(model, DataLoader([x, x], batch_size=None), DataLoader([x], batch_size=None))
    assert refits == [last_epoch]
