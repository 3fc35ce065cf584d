"""The parts that the HW3 image VAEs (:class:`~vae_models.conv_vae.ConvVAE`,
:class:`~vae_models.pixel_vae.PixelVAE`) share: their base :class:`ImageVAE`, the handout's
encoder and decoder networks, the prior chosen by name, and the terms of the bound.

Images are ``LongTensor[B, 3, 32, 32]`` in {0..255}. The latent is ``latent_shape`` = (C_z, s, s):
s = 8, the handout's 8×8 latent, or s = 1, a global vector of C_z numbers.

Networks (HW3 §2 handout; F = ``n_filters``, 128 in the handout, and its F/4, F/2 layers):

* encoder: conv 3×3 (3→F/4) ReLU, conv 4×4 stride 2 (F/4→F/2) ReLU, conv 4×4 stride 2 (F/2→F)
  ReLU, conv 3×3 (F→F), a residual stack, then μ and log σ² of q(z|x): a conv 3×3 (F→2·C_z) at
  8×8, or for s = 1 a linear layer from the flattened 8×8×F features;
* decoder: conv 3×3 (C_z→F) (for s = 1 a linear layer from z to 8×8×F features), a residual
  stack, transposed conv 4×4 stride 2 (F→F/2) ReLU, transposed conv 4×4 stride 2 (F/2→F/4) ReLU,
  conv 3×3 (F/4→out).

The residual stack is ``n_layers`` gated blocks h + a ⊙ σ(b), [a, b] = conv 3×3 (F→2F) of
ReLU(h) (Dauphin et al. 2016), then a ReLU. All convs use 'same' padding.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ar_models.base import check_categorical
from ar_models.errors import ModelConfigError, check
from vae_models.base import LatentVariableModel
from vae_models.fitted_prior import FittedMixturePrior
from vae_models.flow_prior import AutoregressiveFlowPrior
from vae_models.priors import Prior, StandardNormalPrior
from vae_models.vector_prior import VectorARPrior

IMAGE_SHAPE = (3, 32, 32)
N_LEVELS = 256
#: Side of the handout's latent (32 / 4); the other side a latent may have is 1 (a vector).
LATENT_SIDES = (8, 1)
#: Network log-variances are soft-clamped into these ranges (latent, pixels).
LATENT_LOGVAR_RANGE = (-12.0, 8.0)
PIXEL_LOGVAR_RANGE = (-14.0, 4.0)
#: Initial (μ, log σ²) of the decoders' pixel outputs: σ ≈ 0.14, about the spread of pixel values.
DECODER_INIT = (0.5, -4.0)
PRIORS = ("normal", "flow", "fitted")
#: D · ln 256: the discretisation term of a continuous density on 8-bit images scaled to [0, 1].
DISCRETISATION_NATS = math.prod(IMAGE_SHAPE) * math.log(N_LEVELS)


def check_latent_shape(latent_shape: tuple[int, int, int]) -> tuple[int, int, int]:
    """``latent_shape`` as a tuple (C_z, s, s) with C_z >= 1 and s in :data:`LATENT_SIDES`."""
    shape = tuple(latent_shape)
    if len(shape) != 3 or shape[1] != shape[2] or shape[1] not in LATENT_SIDES:
        raise ModelConfigError(
            f"latent_shape must be [C, 8, 8] or [C, 1, 1], got {list(latent_shape)}"
        )
    check(integer=True, minimum=1, latent_channels=shape[0])
    return shape  # type: ignore[return-value]


class GatedResidualBlock(nn.Module):
    """h + a ⊙ σ(b), [a, b] = conv 3×3 (C→2C) of ReLU(h) split along channels."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.act = nn.ReLU()
        self.conv = nn.Conv2d(channels, 2 * channels, 3, padding=1)

    def forward(self, h: Tensor) -> Tensor:
        a, b = self.conv(self.act(h)).chunk(2, dim=1)
        return h + a * torch.sigmoid(b)


def residual_stack(channels: int, n_layers: int) -> nn.Sequential:
    """``n_layers`` :class:`GatedResidualBlock` then a ReLU."""
    return nn.Sequential(*[GatedResidualBlock(channels) for _ in range(n_layers)], nn.ReLU())


def encoder(n_filters: int, latent_shape: tuple[int, int, int], n_layers: int) -> nn.Sequential:
    """[B, 3, 32, 32] → [B, 2·C_z, s, s]: μ and log σ² of q(z|x) (module docstring)."""
    c_z, side, _ = check_latent_shape(latent_shape)
    f = n_filters
    if side == 1:
        head: list[nn.Module] = [
            nn.Flatten(),
            nn.Linear(f * 8 * 8, 2 * c_z),
            nn.Unflatten(1, (2 * c_z, 1, 1)),
        ]
    else:
        head = [nn.Conv2d(f, 2 * c_z, 3, padding=1)]
    return nn.Sequential(
        nn.Conv2d(3, f // 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(f // 4, f // 2, 4, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(f // 2, f, 4, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(f, f, 3, padding=1),
        residual_stack(f, n_layers),
        *head,
    )


def decoder(
    n_filters: int, latent_shape: tuple[int, int, int], n_layers: int, out_channels: int
) -> nn.Sequential:
    """[B, C_z, s, s] → [B, out_channels, 32, 32] (module docstring)."""
    c_z, side, _ = check_latent_shape(latent_shape)
    f = n_filters
    if side == 1:
        up: list[nn.Module] = [nn.Flatten(), nn.Linear(c_z, f * 8 * 8), nn.Unflatten(1, (f, 8, 8))]
    else:
        up = [nn.Conv2d(c_z, f, 3, padding=1)]
    return nn.Sequential(
        *up,
        residual_stack(f, n_layers),
        nn.ConvTranspose2d(f, f // 2, 4, stride=2, padding=1),
        nn.ReLU(),
        nn.ConvTranspose2d(f // 2, f // 4, 4, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(f // 4, out_channels, 3, padding=1),
    )


def check_networks(n_filters: int, n_layers: int) -> None:
    """A :class:`ModelConfigError` unless ``n_filters`` is a positive multiple of 4 and
    ``n_layers`` >= 0."""
    check(integer=True, minimum=1, n_filters=n_filters)
    check(integer=True, minimum=0, n_layers=n_layers)
    if n_filters % 4:
        raise ModelConfigError(f"n_filters must be divisible by 4, got {n_filters}")


def make_prior(
    prior: str, latent_shape: tuple[int, int, int], n_filters: int = 64, n_components: int = 1
) -> Prior:
    """The prior that ``prior`` names over ``latent_shape`` (:mod:`vae_models.priors`): N(0, I);
    a flow (over positions of an 8×8 latent: a PixelCNN of ``n_filters`` filters; over the numbers
    of a vector: a MADE of two hidden layers of ``n_filters`` units whose conditionals are
    mixtures of ``n_components`` Gaussians, one the affine flow); or the mixture of
    ``n_components`` Gaussians fitted by EM."""
    check(prior=prior, choices=PRIORS)
    check(integer=True, minimum=1, prior_filters=n_filters, prior_components=n_components)
    c_z, side, _ = check_latent_shape(latent_shape)
    if prior == "normal":
        return StandardNormalPrior(latent_shape)
    if prior == "fitted":
        return FittedMixturePrior(latent_shape, n_components)
    if side == 1:
        return VectorARPrior(c_z, n_filters, n_components=n_components)
    if n_components != 1:
        raise ModelConfigError(
            "prior_components > 1 needs a latent vector (latent_shape [C, 1, 1]): the flow over "
            "the positions of an 8×8 latent has one Gaussian per conditional"
        )
    return AutoregressiveFlowPrior(c_z, side, side, n_filters)


def elbo_terms(recon: Tensor, kl_elements: Tensor) -> dict[str, Tensor]:
    """Per-example nats of the bound from ``recon`` ``[B]`` and the KL per latent element
    ``[B, C_z, s, s]`` (:meth:`~vae_models.priors.Prior.kl_elements`): ``nll`` = −ELBO =
    ``recon`` + ``kl``, and the KL of each latent channel ``kl_ch<j>`` (they sum to ``kl``)."""
    kl_channels = kl_elements.flatten(2).sum(-1)  # [B, C_z]
    kl = kl_channels.sum(-1)
    terms = {"nll": recon + kl, "kl": kl, "recon": recon}
    terms.update({f"kl_ch{j}": kl_channels[:, j] for j in range(kl_channels.shape[1])})
    return terms


def extra_terms(latent_channels: int) -> tuple[str, ...]:
    """The loss terms beside ``nll`` that :func:`elbo_terms` gives."""
    return ("kl", "recon", *(f"kl_ch{j}" for j in range(latent_channels)))


class ImageVAE(LatentVariableModel):
    """The base of the HW3 image VAEs: batches ``LongTensor[B, 3, 32, 32]`` in {0..255}, a latent
    of ``latent_shape``, the handout's encoder of ``n_filters`` filters and ``n_layers`` residual
    blocks (``self.encoder``), the loss terms of :func:`elbo_terms`. A subclass builds its decoder
    and ``self.prior`` and implements ``posterior(x)`` and the bound.

    Args:
        latent_shape: (C_z, s, s) with s = 8 (the handout's) or 1 (a global latent vector).
        n_filters: channels of the widest layers (128 in the handout; divisible by 4).
        n_layers: gated residual blocks per stack (5 in the handout).
        lr, lr_final_factor, free_bits, kl_warmup_steps, beta: see
            :class:`~vae_models.base.LatentVariableModel`.
    """

    n_categories = N_LEVELS

    def __init__(
        self,
        latent_shape: tuple[int, int, int],
        n_filters: int,
        n_layers: int,
        lr: float,
        lr_final_factor: float,
        free_bits: float,
        kl_warmup_steps: int,
        beta: float,
    ) -> None:
        latent_shape = check_latent_shape(latent_shape)
        check_networks(n_filters, n_layers)
        # The per-channel KL terms depend on the latent; the base reads them in __init__.
        self.extra_terms = extra_terms(latent_shape[0])
        super().__init__(lr, lr_final_factor, free_bits, kl_warmup_steps, beta)
        self.latent_shape = latent_shape
        self.encoder = encoder(n_filters, latent_shape, n_layers)

    @property
    def n_dims(self) -> int:
        return math.prod(IMAGE_SHAPE)

    def check_images(self, x: Tensor) -> None:
        """A ValueError naming the model unless ``x`` is a batch of 8-bit images (the values are
        not checked when the running loaders declare them in range)."""
        values = not self.batches_within(0, N_LEVELS - 1)
        check_categorical(x, N_LEVELS, IMAGE_SHAPE, type(self).__name__, values=values)

    def posterior_mean(self, x: Tensor) -> Tensor:
        """The mean of q(z|x) for 8-bit images ``x``, ``[B, *latent_shape]``."""
        return self.posterior(x)[0]
