"""HW3 §2: a convolutional VAE on 32×32 RGB images with 8-bit pixels (SVHN).

Data. A batch is ``LongTensor[B, 3, 32, 32]`` in {0..255}. The model dequantises it,
y = (x + u) / 256 with u ~ U[0, 1)^D, and models y ∈ [0, 1]^D with a continuous density p_c.
Since P(x) = ∫_{bin of x} p_c(y) dy = E_u[p_c(y)] · 256^{−D}, Jensen gives

    −log P(x) ≤ E_u[−log p_c(y)] + D · ln 256,

so ``nll`` adds the discretisation term D · ln 256 and bits/dim are comparable with discrete models
(a negative value would be a bug). D = 3·32·32.

Model. p(y|z) = N(μ_θ(z), diag σ²_θ(z)), a mean and a log-variance per pixel and channel
(``decoder_variance="pixel"``), or a mean per pixel and channel and one learned σ²_c per colour
channel c shared by all pixels and images (``"channel"``); a density on ℝ^D: the mass it puts
outside [0, 1]^D only loosens the bound. q(z|y) = N(μ_φ(y), diag σ²_φ(y))
with z ``[C_z, 8, 8]``. The prior is ``"normal"``, N(0, I), ``"flow"``, the autoregressive flow
of :mod:`vae_models.flow_prior` (on a 1×1 latent the autoregressive prior over its channels of
:mod:`vae_models.vector_prior`), ``"mixture"``, the learned Gaussian mixture of
:mod:`vae_models.mixture_prior`, or ``"fitted"``, N(0, I) until a Gaussian mixture is fitted to
the posterior means by EM in the last epochs (:mod:`vae_models.fitted_prior`). Per example, in
nats,

    −ELBO = recon + kl,   recon = −log p(y|z) + D · ln 256,   kl = log q(z|y) − log p(z),

with one reparameterised z ~ q(z|y) and one u per example and step (train and eval). The KL is
analytic for the normal prior and the single-sample estimate above for the learned priors.
:meth:`ConvVAE.loss_terms` returns ``nll`` (= −ELBO), ``kl``, ``recon`` and the KL of each latent
channel ``kl_ch<j>`` (they sum to ``kl``), logged by the base as ``<stage>/bpd``, ``kl_bpd``,
``recon_bpd`` and ``kl_ch<j>_bpd`` (bits per *data* dimension). Random numbers are drawn in the
order u, then the z noise.
The latent-use diagnostics of :mod:`vae_models.base` (``<stage>/active_units``, ``<stage>/mi_nats``)
are logged per validation and test epoch from q(z|x) at the bin centres.

Networks (HW3 §2 handout; w = ``width``, 128 in the handout, and its w/4, w/2 layers):

* encoder: conv 3×3 (3→w/4) ReLU, conv 4×4 stride 2 (w/4→w/2) ReLU, conv 4×4 stride 2 (w/2→w)
  ReLU, conv 3×3 (w→w), a residual stack, conv 3×3 (w→2·C_z): μ and log σ² at 8×8;
* decoder: conv 3×3 (C_z→w), a residual stack, transposed conv 4×4 stride 2 (w→w/2) ReLU,
  transposed conv 4×4 stride 2 (w/2→w/4) ReLU, conv 3×3 (w/4→6): μ and log σ² of each pixel and
  channel.

All convs use 'same' padding (3×3: 1; 4×4 stride 2: 1, halving / doubling the size). The residual
stack is ``n_res_blocks`` gated blocks (Dauphin et al. 2016), then a ReLU; see
:class:`GatedResidualBlock`. Not from the handout: the encoder reads 2y − 1; log-variances are
soft-clamped (latent into [−12, 8], pixels into [−14, 4]); the decoder's output biases start at
μ = ½ and log σ² = −4 (σ ≈ 0.14, about the spread of pixel values, so training does not begin by
shrinking σ from 1); ``latent_channels`` defaults to 16.

Hooks for callbacks (beyond the DensityModel contract): :meth:`posterior_mean`,
:meth:`decode_to_pixels`, ``sample(n, decoder_noise=False)``, ``n_categories = 256``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from pytorch_lightning.utilities import rank_zero_warn
from torch import Tensor, nn

from ar_models.base import check_categorical
from ar_models.errors import ModelConfigError, check
from vae_models.base import LatentVariableModel
from vae_models.fitted_prior import FittedMixturePrior
from vae_models.flow_prior import AutoregressiveFlowPrior
from vae_models.gaussians import (
    gaussian_log_prob_per_dim,
    kl_std_normal_per_dim,
    reparameterize,
    soft_clamp,
)
from vae_models.mixture_prior import GaussianMixturePrior
from vae_models.mmd import mmd_squared
from vae_models.vector_prior import VectorARPrior

PRIORS = ("normal", "flow")
#: How ConvVAE trains a learned prior (see ``prior_training``).
PRIOR_TRAININGS = ("elbo", "posterior")
#: Draws z ~ q(z|x) per step of :meth:`ConvVAE.refit_prior`, and its Adam learning rate.
PRIOR_FIT_BATCH = 256
PRIOR_FIT_LR = 1e-3
#: ConvVAE's priors: those it shares with the PixelVAE, the learned Gaussian mixture and the one
#: fitted by EM.
CONV_VAE_PRIORS = (*PRIORS, "mixture", "fitted")
DECODER_VARIANCES = ("pixel", "channel")
IMAGE_SHAPE = (3, 32, 32)
N_LEVELS = 256
LATENT_LOGVAR_RANGE = (-12.0, 8.0)
PIXEL_LOGVAR_RANGE = (-14.0, 4.0)
#: Side of the handout's latent (32 / 4) and the sides a coarser latent may have.
BASE_LATENT_SIDE = 8
LATENT_SIDES = (8, 4, 2, 1)
#: Initial output biases of the decoder: (μ, log σ²) of every pixel and channel.
DECODER_INIT = (0.5, -4.0)


FlowPrior = AutoregressiveFlowPrior | VectorARPrior


def flow_prior_or_none(
    prior: str,
    latent_shape: tuple[int, int, int],
    flow_filters: int,
    flow_blocks: int,
    flow_components: int = 1,
) -> FlowPrior | None:
    """The autoregressive prior over ``latent_shape`` for ``prior == "flow"``; None for
    p(z) = N(0, I). A spatial latent gets the flow over positions (a PixelCNN of ``flow_filters``
    filters and ``flow_blocks`` residual blocks); a 1×1 latent, which has one position, the
    autoregressive prior over its channels (a MADE of ``flow_blocks`` hidden layers of
    ``flow_filters`` units; the affine flow for ``flow_components`` = 1, conditionals that are
    mixtures of that many Gaussians otherwise, :mod:`vae_models.vector_prior`)."""
    if prior != "flow":
        return None
    channels, height, width = latent_shape
    if height * width == 1:
        return VectorARPrior(channels, flow_filters, flow_blocks, flow_components)
    if flow_components != 1:
        raise ModelConfigError(
            f"flow_components > 1 needs a 1×1 latent (latent_side 1), not {height}×{width}"
        )
    return AutoregressiveFlowPrior(channels, height, width, flow_filters, flow_blocks)


def prior_log_prob_elements(
    z: Tensor,
    learned_prior: FlowPrior | GaussianMixturePrior | FittedMixturePrior | None,
) -> Tensor:
    """log p(z) per latent element (they sum to log p(z)), nats: N(0, 1) per element, or the
    learned prior's conditionals (the flow's, or the mixture's chain-rule factors)."""
    if learned_prior is not None:
        return learned_prior.log_prob_elements(z)
    return -0.5 * (math.log(2.0 * math.pi) + z**2)


def elbo_terms(
    recon: Tensor,
    z: Tensor,
    mu_z: Tensor,
    logvar_z: Tensor,
    learned_prior: FlowPrior | GaussianMixturePrior | FittedMixturePrior | None,
) -> dict[str, Tensor]:
    """Per-example nats of the bound: ``nll`` = −ELBO = ``recon`` + ``kl``, and ``kl_ch<j>``
    (summing to ``kl``). KL(q(z|x) ‖ N(0, I)) is analytic; against a learned prior (the flow or the
    mixture) it is the one-sample estimate log q(z|x) − log p(z) at the
    reparameterised ``z``."""
    if learned_prior is None:
        kl_elements = kl_std_normal_per_dim(mu_z, logvar_z)
    else:
        log_q = gaussian_log_prob_per_dim(z, mu_z, logvar_z)
        kl_elements = log_q - learned_prior.log_prob_elements(z)
    kl_channels = kl_elements.flatten(2).sum(-1)  # [B, C_z]
    kl = kl_channels.sum(-1)
    terms = {"nll": recon + kl, "kl": kl, "recon": recon}
    terms.update({f"kl_ch{j}": kl_channels[:, j] for j in range(kl_channels.shape[1])})
    return terms


class GatedResidualBlock(nn.Module):
    """h + a ⊙ σ(b), with [a, b] = conv 3×3 (C→2C) of ReLU(h) split along channels (a gated
    linear unit, Dauphin et al. 2016, on the residual branch)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.act = nn.ReLU()
        self.conv = nn.Conv2d(channels, 2 * channels, 3, padding=1)

    def forward(self, h: Tensor) -> Tensor:
        a, b = self.conv(self.act(h)).chunk(2, dim=1)
        return h + a * torch.sigmoid(b)


def residual_stack(channels: int, n_blocks: int) -> nn.Sequential:
    """``n_blocks`` :class:`GatedResidualBlock` then a ReLU."""
    return nn.Sequential(*[GatedResidualBlock(channels) for _ in range(n_blocks)], nn.ReLU())


def check_latent_side(latent_side: int) -> int:
    """The number of extra halvings from 8×8 to ``latent_side`` × ``latent_side`` (0 for 8);
    a :class:`ModelConfigError` unless ``latent_side`` is one of :data:`LATENT_SIDES`."""
    if isinstance(latent_side, bool) or latent_side not in LATENT_SIDES:
        raise ModelConfigError(f"latent_side must be one of {LATENT_SIDES}, got {latent_side!r}")
    return int(math.log2(BASE_LATENT_SIDE // latent_side))


def encoder(
    width: int, latent_channels: int, n_res_blocks: int, latent_side: int = BASE_LATENT_SIDE
) -> nn.Sequential:
    """[B, 3, 32, 32] → [B, 2·C_z, s, s] (μ and log σ² of q(z|y)), s = ``latent_side``: for 4
    and 2, one conv 4×4 stride 2 (w→w) ReLU per halving after the residual stack; for 1 (a global
    latent vector), a linear layer from the flattened 8×8×w features in place of the last conv."""
    halvings = check_latent_side(latent_side)
    if latent_side == 1:
        head: list[nn.Module] = [
            nn.Flatten(),
            nn.Linear(width * BASE_LATENT_SIDE**2, 2 * latent_channels),
            nn.Unflatten(1, (2 * latent_channels, 1, 1)),
        ]
    else:
        head = []
        for _ in range(halvings):
            head += [nn.Conv2d(width, width, 4, stride=2, padding=1), nn.ReLU()]
        head.append(nn.Conv2d(width, 2 * latent_channels, 3, padding=1))
    return nn.Sequential(*_encoder_trunk(width, n_res_blocks), *head)


def _encoder_trunk(width: int, n_res_blocks: int) -> list[nn.Module]:
    """The handout's encoder up to its residual stack: [B, 3, 32, 32] → [B, w, 8, 8]."""
    return [
        nn.Conv2d(3, width // 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(width // 4, width // 2, 4, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(width // 2, width, 4, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(width, width, 3, padding=1),
        residual_stack(width, n_res_blocks),
    ]


def decoder(
    width: int,
    latent_channels: int,
    n_res_blocks: int,
    out_channels: int = 2 * IMAGE_SHAPE[0],
    latent_side: int = BASE_LATENT_SIDE,
) -> nn.Sequential:
    """[B, C_z, s, s] → [B, out_channels, 32, 32] (default 6: μ and log σ² of p(y|z)),
    s = ``latent_side``: for 4 and 2, one transposed conv 4×4 stride 2 (w→w) ReLU per doubling
    before the residual stack; for 1, a linear layer from z to 8×8×w features in place of the
    first conv."""
    halvings = check_latent_side(latent_side)
    if latent_side == 1:
        up: list[nn.Module] = [
            nn.Flatten(),
            nn.Linear(latent_channels, width * BASE_LATENT_SIDE**2),
            nn.Unflatten(1, (width, BASE_LATENT_SIDE, BASE_LATENT_SIDE)),
        ]
    else:
        up = [nn.Conv2d(latent_channels, width, 3, padding=1)]
        for _ in range(halvings):
            up += [nn.ConvTranspose2d(width, width, 4, stride=2, padding=1), nn.ReLU()]
    return nn.Sequential(
        *up,
        residual_stack(width, n_res_blocks),
        nn.ConvTranspose2d(width, width // 2, 4, stride=2, padding=1),
        nn.ReLU(),
        nn.ConvTranspose2d(width // 2, width // 4, 4, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(width // 4, out_channels, 3, padding=1),
    )


class ConvVAE(LatentVariableModel):
    """Convolutional VAE for ``LongTensor[B, 3, 32, 32]`` 8-bit images; ``nll`` is the negative
    ELBO in nats including the discretisation term (module docstring).

    Args:
        prior: ``"normal"`` (N(0, I)), ``"flow"`` (autoregressive flow, VLAE), ``"mixture"``
            (a learned mixture of diagonal Gaussians, :mod:`vae_models.mixture_prior`) or
            ``"fitted"`` (N(0, I) until a full-covariance Gaussian mixture is fitted by EM to
            posterior means, :mod:`vae_models.fitted_prior`; from then on that mixture is p(z)
            for the bound, the training objective and sampling).
        latent_channels: C_z, channels of the latent (8×8 by default).
        width: channels of the widest layers (128 in the handout; divisible by 4).
        n_res_blocks: gated residual blocks per stack (5).
        flow_filters: residual-stream width of the flow prior's PixelCNN (for a 1×1 latent:
            width of its MADE's hidden layers).
        flow_blocks: type-B residual blocks of the flow prior's PixelCNN (3; for a 1×1 latent:
            hidden layers of its MADE).
        flow_components: 1×1 latent only: Gaussians per conditional of the autoregressive prior
            over the channels (1: the affine flow; :mod:`vae_models.vector_prior`).
        prior_training: how a learned prior (``"flow"``, ``"mixture"``) is trained: ``"elbo"``
            (with the rest of the model, by the training objective, so the encoder's KL is
            against it) or ``"posterior"`` (training only: the encoder and decoder are trained
            as with p(z) = N(0, I), analytic KL under the free bits, warm-up and β, and the prior
            by maximum likelihood on the detached posterior draws z ~ q(z|x), −log p(sg(z)) added
            to the objective; the logged bound and sampling use the learned prior).
        prior_components: K, components of the mixture priors.
        prior_fit_epochs: F, for ``prior="fitted"`` and for ``prior_fit_steps`` > 0: the prior
            is refitted at the start of the validation of each of the fit's last F epochs
            (:meth:`epochs_in_fit`: ``max_epochs``, or the complete epochs before ``max_steps``
            ends it; every epoch when neither bounds it), to the posteriors of that epoch's
            training batches, gathered from every process. ``"fitted"``: by EM to the
            posterior means (skipped with a warning when there are fewer than K);
            :meth:`fit_prior` fits it by hand.
        prior_fit_steps: S >= 0, ``prior_training="posterior"`` only: the refit of the learned
            prior in the last F epochs is S Adam steps on −log p(z) at draws z ~ q(z|x) of those
            posteriors (:meth:`refit_prior`; 0: no refit).
        decoder_variance: ``"pixel"`` (the decoder outputs log σ² of every pixel and channel) or
            ``"channel"`` (one learned log σ² per colour channel, shared by all pixels and images).
        latent_side: s, the latent is C_z × s × s: 8 (the handout's), or 4, 2 (coarser, with
            one more stride-2 conv in the encoder and transposed conv in the decoder per
            halving), or 1 (a global vector of C_z numbers, read and written by linear layers).
        free_bits: λ >= 0, nats per latent channel below which the KL is not penalised in
            training (0: off; :mod:`vae_models.base`).
        kl_warmup_steps: training steps of the linear KL warm-up (0: off).
        beta: β >= 0, the KL's weight in training once warmed up (1: the ELBO;
            :mod:`vae_models.base`).
        mmd_weight: γ >= 0, ``prior="normal"`` only, training objective only:
            γ · MMD²(q(z), N(0, I)) nats per example is added (InfoVAE, :mod:`vae_models.mmd`),
            estimated from the batch's posterior draws against as many N(0, I) draws and warmed
            up with the KL (γ · min(1, t / T_w)); 0: off.
        lr: Adam learning rate.
        lr_final_factor: the learning rate decays along a cosine from ``lr`` to
            ``lr * lr_final_factor`` over the trainer's total steps (1.0: constant).
    """

    n_categories = N_LEVELS

    def __init__(
        self,
        prior: str = "normal",
        latent_channels: int = 16,
        width: int = 128,
        n_res_blocks: int = 5,
        flow_filters: int = 64,
        flow_blocks: int = 3,
        flow_components: int = 1,
        prior_training: str = "elbo",
        prior_fit_steps: int = 0,
        prior_components: int = 50,
        prior_fit_epochs: int = 3,
        decoder_variance: str = "pixel",
        latent_side: int = BASE_LATENT_SIDE,
        free_bits: float = 0.0,
        kl_warmup_steps: int = 0,
        beta: float = 1.0,
        mmd_weight: float = 0.0,
        lr: float = 1e-3,
        lr_final_factor: float = 1.0,
    ) -> None:
        check_latent_side(latent_side)
        check(minimum=0, mmd_weight=mmd_weight)
        if mmd_weight > 0 and prior != "normal":
            raise ModelConfigError(
                f"mmd_weight > 0 matches q(z) to N(0, I): needs prior 'normal', not {prior!r}"
            )
        if prior not in CONV_VAE_PRIORS:
            raise ModelConfigError(f"prior must be one of {CONV_VAE_PRIORS}, got {prior!r}")
        check(
            integer=True,
            minimum=1,
            prior_components=prior_components,
            prior_fit_epochs=prior_fit_epochs,
            flow_components=flow_components,
        )
        if prior_training not in PRIOR_TRAININGS:
            raise ModelConfigError(
                f"prior_training must be one of {PRIOR_TRAININGS}, got {prior_training!r}"
            )
        check(integer=True, minimum=0, prior_fit_steps=prior_fit_steps)
        if prior_fit_steps and prior_training != "posterior":
            raise ModelConfigError("prior_fit_steps > 0 needs prior_training 'posterior'")
        if prior_training == "posterior" and prior not in ("flow", "mixture"):
            raise ModelConfigError(
                f"prior_training 'posterior' trains a learned prior (flow, mixture), not {prior!r}"
            )
        if decoder_variance not in DECODER_VARIANCES:
            raise ModelConfigError(
                f"decoder_variance must be one of {DECODER_VARIANCES}, got {decoder_variance!r}"
            )
        check(
            integer=True,
            minimum=1,
            latent_channels=latent_channels,
            width=width,
            flow_filters=flow_filters,
        )
        if width % 4:
            raise ModelConfigError(f"width must be divisible by 4, got {width}")
        if n_res_blocks < 0 or flow_blocks < 0:
            raise ModelConfigError(
                f"n_res_blocks and flow_blocks must be >= 0, got {n_res_blocks}, {flow_blocks}"
            )
        # The per-channel KL terms depend on latent_channels; the base reads them in __init__.
        self.extra_terms = ("kl", "recon", *(f"kl_ch{j}" for j in range(latent_channels)))
        super().__init__(
            lr=lr,
            lr_final_factor=lr_final_factor,
            free_bits=free_bits,
            kl_warmup_steps=kl_warmup_steps,
            beta=beta,
        )
        self.save_hyperparameters()
        self.latent_shape = (latent_channels, latent_side, latent_side)
        self.encoder = encoder(width, latent_channels, n_res_blocks, latent_side)
        per_pixel = decoder_variance == "pixel"
        n_out = IMAGE_SHAPE[0] * (2 if per_pixel else 1)
        self.decoder = decoder(width, latent_channels, n_res_blocks, n_out, latent_side)
        self.decoder_logvar = (
            None if per_pixel else nn.Parameter(torch.full((1, IMAGE_SHAPE[0], 1, 1), 0.0))
        )
        out_bias = self.decoder[-1].bias
        with torch.no_grad():
            out_bias[: IMAGE_SHAPE[0]].fill_(DECODER_INIT[0])
            if per_pixel:
                out_bias[IMAGE_SHAPE[0] :].fill_(DECODER_INIT[1])
            else:
                self.decoder_logvar.fill_(DECODER_INIT[1])
        self.flow = flow_prior_or_none(
            prior, self.latent_shape, flow_filters, flow_blocks, flow_components
        )
        self.prior_training = prior_training
        self.prior_fit_steps = prior_fit_steps
        self.mmd_weight = float(mmd_weight)
        self._posterior_draws: tuple[Tensor, Tensor, Tensor] | None = None  # z, μ, log σ²
        self.mixture: GaussianMixturePrior | FittedMixturePrior | None = None
        if prior == "mixture":
            self.mixture = GaussianMixturePrior(self.latent_shape, prior_components)
        elif prior == "fitted":
            self.mixture = FittedMixturePrior(self.latent_shape, prior_components)
        self.prior_fit_epochs = prior_fit_epochs
        self._codes: list[Tensor] | None = None  # posteriors [B, 2, ...] (μ, log σ²) for a fit

    @property
    def learned_prior(
        self,
    ) -> FlowPrior | GaussianMixturePrior | FittedMixturePrior | None:
        """The flow or a mixture, None for N(0, I) (and for the fitted mixture until its first
        fit: N(0, I) then, with the analytic KL)."""
        if isinstance(self.mixture, FittedMixturePrior) and not bool(self.mixture.fitted):
            return None
        return self.flow if self.flow is not None else self.mixture

    # ------------------------------------------------------------------ the fitted prior
    def fits_prior_this_epoch(self) -> bool:
        """Whether this training epoch's posteriors are fitted at its validation start
        (``prior="fitted"``, or a learned prior with ``prior_fit_steps`` > 0: the last
        ``prior_fit_epochs`` epochs of the fit, or every epoch when it has no end)."""
        fitted = isinstance(self.mixture, FittedMixturePrior)
        if not fitted and not (self.prior_fit_steps > 0 and self.learned_prior is not None):
            return False
        n_epochs = self.epochs_in_fit()
        return n_epochs is None or self.current_epoch >= n_epochs - self.prior_fit_epochs

    def epochs_in_fit(self) -> int | None:
        """The training epochs the fit completes, each ending in a validation: ``max_epochs``,
        or fewer when ``max_steps`` ends the fit first (its total optimiser steps over the steps
        per epoch, rounded down: an epoch cut short is not validated); None when neither bounds
        it (or an epoch's length is unknown)."""
        trainer = self.trainer
        per_epoch = trainer.num_training_batches / max(trainer.accumulate_grad_batches, 1)
        if not math.isfinite(per_epoch) or per_epoch <= 0:
            max_epochs = trainer.max_epochs
            return None if max_epochs is None or max_epochs < 0 else max_epochs
        total = trainer.estimated_stepping_batches
        return int(total // math.ceil(per_epoch)) if math.isfinite(total) else None

    def fit_prior(self, codes: Tensor) -> list[float]:
        """Fit the ``prior="fitted"`` mixture to posterior means ``codes`` [N, C_z, s, s]
        (:meth:`vae_models.fitted_prior.FittedMixturePrior.fit`; its log-likelihoods)."""
        if not isinstance(self.mixture, FittedMixturePrior):
            raise ModelConfigError(f"fit_prior needs prior='fitted', not {self.hparams.prior!r}")
        return self.mixture.fit(codes.to(self.mixture.means.device))

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        self._codes = [] if self.fits_prior_this_epoch() else None

    def refit_prior(self, posteriors: Tensor, steps: int, seed: int = 0) -> list[float]:
        """Fit the learned prior (flow or mixture) to q by ``steps`` Adam steps (learning rate
        :data:`PRIOR_FIT_LR`) on −log p(z), each on :data:`PRIOR_FIT_BATCH` draws z ~ q(z|x) of
        posteriors ``posteriors`` [N, 2, C_z, s, s] (μ, log σ²) picked at random (the generator
        seeded by ``seed``, so every process makes the same steps); returns each step's mean
        −log p(z), nats."""
        prior = self.learned_prior
        if prior is None or isinstance(prior, FittedMixturePrior):
            raise ModelConfigError("refit_prior needs prior 'flow' or 'mixture'")
        generator = torch.Generator(device=posteriors.device).manual_seed(seed)
        optimiser = torch.optim.Adam(prior.parameters(), lr=PRIOR_FIT_LR)
        losses = []
        with torch.inference_mode(False), torch.enable_grad():
            posteriors = posteriors.clone()  # a normal tensor, also when taken in inference mode
            for _ in range(steps):
                pick = torch.randint(
                    len(posteriors),
                    (PRIOR_FIT_BATCH,),
                    generator=generator,
                    device=posteriors.device,
                )
                z = reparameterize(*posteriors[pick].unbind(1), generator=generator)
                loss = -prior.log_prob_elements(z).mean(0).sum()
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                losses.append(float(loss.detach()))
        prior.zero_grad(set_to_none=True)
        return losses

    def on_validation_epoch_start(self) -> None:
        super().on_validation_epoch_start()
        codes, self._codes = self._codes, None
        if not codes:
            return
        codes = torch.cat(codes)
        if self.trainer.world_size > 1:  # every process fits the same prior to all the codes
            codes = self.all_gather(codes).flatten(0, 1)
        if not isinstance(self.mixture, FittedMixturePrior):
            steps = 1 if self.trainer.fast_dev_run else self.prior_fit_steps  # a debugging run
            losses = self.refit_prior(codes, steps, seed=self.current_epoch)
            self.log("train/prior_fit_nll", losses[-1], on_step=False, on_epoch=True)
            return
        codes = codes[:, 0]  # the posterior means
        if len(codes) < self.mixture.n_components:
            rank_zero_warn(
                f"ConvVAE: {len(codes)} posterior means this epoch, fewer than the "
                f"{self.mixture.n_components} components of the fitted prior; not fitted"
            )
            return
        self.fit_prior(codes)

    @property
    def n_dims(self) -> int:
        return math.prod(IMAGE_SHAPE)

    # ------------------------------------------------------------------ scaling
    def dequantize(self, x: Tensor) -> Tensor:
        """y = (x + u) / 256, u ~ U[0, 1) per pixel and channel: a float tensor in [0, 1)."""
        x = x.to(self.dtype)
        return (x + torch.rand_like(x)) / N_LEVELS

    @staticmethod
    def quantize(y: Tensor) -> Tensor:
        """The 8-bit value whose bin [x/256, (x+1)/256) holds y, clamped: ``LongTensor`` 0..255."""
        return torch.floor(y * N_LEVELS).clamp(0, N_LEVELS - 1).long()

    # ------------------------------------------------------------------ the two networks
    def encode(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """q(z|y) = N(μ, diag exp(logvar)) for y ∈ [0, 1]: ``(μ, logvar)``, each
        ``[B, C_z, 8, 8]``."""
        mu, logvar = self.encoder(2.0 * y - 1.0).chunk(2, dim=1)
        return mu, soft_clamp(logvar, *LATENT_LOGVAR_RANGE)

    def decode(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """p(y|z) = N(μ, diag exp(logvar)): ``(μ, logvar)``, each ``[B, 3, 32, 32]``."""
        out = self.decoder(z)
        if self.decoder_logvar is None:
            mu, logvar = out.chunk(2, dim=1)
        else:
            mu, logvar = out, self.decoder_logvar.expand_as(out)
        return mu, soft_clamp(logvar, *PIXEL_LOGVAR_RANGE)

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(μ, logvar) of q(z|y) at the bin centres y = (x + ½)/256 of 8-bit images ``x``."""
        self._check_x(x)
        return self.encode((x.to(self.dtype) + 0.5) / N_LEVELS)

    def posterior_mean(self, x: Tensor) -> Tensor:
        """The mean of q(z|y) at the bin centres y = (x + ½)/256 of 8-bit images ``x``."""
        return self.posterior(x)[0]

    def decode_to_pixels(self, z: Tensor) -> Tensor:
        """The decoder mean μ(z) as 8-bit images ``LongTensor[B, 3, 32, 32]``."""
        return self.quantize(self.decode(z)[0])

    def prior_log_prob_elements(self, z: Tensor) -> Tensor:
        """log p(z) per latent element (they sum to log p(z)), ``[B, C_z, 8, 8]`` nats."""
        return prior_log_prob_elements(z, self.learned_prior)

    def sample_prior(self, n: int) -> Tensor:
        """z ~ p(z), ``[n, C_z, 8, 8]``."""
        if self.learned_prior is not None:
            return self.learned_prior.sample(n, device=self.device)
        return torch.randn(n, *self.latent_shape, device=self.device)

    # ------------------------------------------------------------------ bound (nats)
    def _check_x(self, x: Tensor) -> None:
        check = not self.batches_within(0, N_LEVELS - 1)
        check_categorical(x, N_LEVELS, IMAGE_SHAPE, "ConvVAE", values=check)

    def recon_and_latent(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """One draw of the bound's pieces for 8-bit images ``x``: ``(recon, z, μ_z, log σ²_z)``,
        recon = −log p(y|z) + D ln 256 per example (nats) at y = (x + u)/256 and the
        reparameterised z ~ q(z|y) (random numbers u, then the z noise)."""
        self._check_x(x)
        y = self.dequantize(x)
        mu_z, logvar_z = self.encode(y)
        if self.training and self._codes is not None:
            self._codes.append(torch.stack([mu_z, logvar_z], 1).detach())
        z = reparameterize(mu_z, logvar_z)
        if self.training and (self.prior_training == "posterior" or self.mmd_weight > 0):
            self._posterior_draws = (z, mu_z, logvar_z)
        mu_y, logvar_y = self.decode(z)
        log_py = gaussian_log_prob_per_dim(y, mu_y, logvar_y).flatten(1).sum(-1)
        return -log_py + self.n_dims * math.log(N_LEVELS), z, mu_z, logvar_z

    def loss_terms(self, x: Tensor) -> dict[str, Tensor]:
        """Per-example nats: ``nll`` = −ELBO = ``recon`` + ``kl`` (module docstring);
        ``kl_ch<j>`` sum to ``kl``."""
        return elbo_terms(*self.recon_and_latent(x), self.learned_prior)

    def training_objective_change(self, batch: Any, terms: dict[str, Tensor]) -> Tensor:
        """The base's KL change (plus γ_t · MMD² with ``mmd_weight``); with
        ``prior_training="posterior"`` instead: the objective of the N(0, I) prior's model
        (analytic KL per channel, free bits, warm-up, β) in place of the bound's KL, plus
        −log p(sg(z)) of the learned prior at this batch's posterior draws (nats per example,
        a scalar)."""
        draws, self._posterior_draws = self._posterior_draws, None
        if self.mmd_weight > 0 and draws is not None:  # InfoVAE: γ_t · MMD²(q(z), N(0, I))
            z = draws[0].flatten(1)
            mmd = mmd_squared(z, torch.randn_like(z))
            gamma = self.mmd_weight * self.warmup_factor()
            return super().training_objective_change(batch, terms) + gamma * mmd
        if self.prior_training != "posterior" or draws is None:
            return super().training_objective_change(batch, terms)
        z, mu_z, logvar_z = draws
        normal = elbo_terms(terms["recon"], z, mu_z, logvar_z, None)  # the analytic KLs
        prior_nll = -self.learned_prior.log_prob_elements(z.detach()).flatten(1).sum(-1)
        return (
            self.kl_objective_change(normal)
            + normal["kl"].mean()
            - terms["kl"].mean()
            + prior_nll.mean()
        )

    def nll(self, x: Tensor) -> Tensor:
        """The negative ELBO per example in nats, discretisation term included (an upper bound on
        −log P(x) for the 8-bit x), one-sample estimate as in :meth:`loss_terms`."""
        return self.loss_terms(x)["nll"]

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample(self, n: int, decoder_noise: bool = True) -> Tensor:
        """``n`` images ``LongTensor[n, 3, 32, 32]``: z ~ p(z), then y ~ p(y|z) quantised (the
        model's own samples, the DensityModel contract; the independent per-pixel noise shows as
        static), or with ``decoder_noise=False`` the decoder mean μ(z) quantised (the handout's
        sample figures: ``SampleGrid(sample_kwargs={"decoder_noise": False})``)."""
        z = self.sample_prior(n)
        mu, logvar = self.decode(z)
        y = reparameterize(mu, logvar) if decoder_noise else mu
        return self.quantize(y)
