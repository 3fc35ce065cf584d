"""HW3 §2: a convolutional VAE on 32×32 RGB images with 8-bit pixels (SVHN).

Data. A batch is ``LongTensor[B, 3, 32, 32]`` in {0..255}. The model dequantises it,
y = (x + u) / 256 with u ~ U[0, 1)^D, and models y ∈ [0, 1]^D with a continuous density p_c.
Since P(x) = ∫_{bin of x} p_c(y) dy = E_u[p_c(y)] · 256^{−D}, Jensen gives

    −log P(x) ≤ E_u[−log p_c(y)] + D · ln 256,

so ``nll`` adds the discretisation term D · ln 256 and bits/dim are comparable with discrete models
(a negative value would be a bug). D = 3·32·32.

Model. z ~ p(z) (the prior, :mod:`vae_models.priors`: N(0, I), an autoregressive flow, or a
mixture fitted to the posterior), p(y|z) = N(μ_θ(z), diag σ²), a mean per pixel and channel and one
learned σ²_c per colour channel c, and q(z|y) = N(μ_φ(y), diag σ²_φ(y)); the networks are the
handout's (:mod:`vae_models.image_vae`). Per example, in nats,

    −ELBO = recon + kl,   recon = −log p(y|z) + D · ln 256,   kl = log q(z|y) − log p(z),

with one reparameterised z ~ q(z|y) and one u per example and step (random numbers in the order u,
then z); the KL is analytic for N(0, I). ``loss_terms`` returns ``nll`` (= −ELBO), ``kl``,
``recon`` and the KL of each latent channel ``kl_ch<j>``.

``prior_training="posterior"`` (training objective only; not from the handout) trains the encoder
and decoder as if p(z) were N(0, I) (the analytic KL, under free bits, warm-up and β) and a learned
prior by maximum likelihood on the detached posterior draws, −log p(sg(z)): the prior follows the
aggregate posterior without shaping it. The logged bound and sampling always use the prior.

Not from the handout: the encoder reads 2y − 1; log-variances are soft-clamped; the decoder's
output biases start at μ = ½ and log σ² = −4. Hooks for callbacks: :meth:`posterior_mean`,
:meth:`decode_to_pixels`, ``sample(n, decoder_noise=False)``, ``n_categories = 256``, ``prior``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ar_models.errors import check
from vae_models.gaussians import (
    gaussian_log_prob_per_dim,
    kl_std_normal_per_dim,
    reparameterize,
    soft_clamp,
)
from vae_models.image_vae import (
    DECODER_INIT,
    DISCRETISATION_NATS,
    IMAGE_SHAPE,
    LATENT_LOGVAR_RANGE,
    N_LEVELS,
    PIXEL_LOGVAR_RANGE,
    ImageVAE,
    decoder,
    elbo_terms,
    make_prior,
)

PRIOR_TRAININGS = ("elbo", "posterior")


class ConvVAE(ImageVAE):
    """Convolutional VAE for 8-bit 32×32 RGB images (HW3 §2).

    ``nll`` is the negative ELBO in nats including the discretisation term (module docstring).

    Args:
        prior: ``"normal"``, ``"flow"`` or ``"fitted"`` (:func:`vae_models.image_vae.make_prior`).
        latent_shape, n_filters, n_layers: see :class:`~vae_models.image_vae.ImageVAE`.
        prior_filters: width of the flow prior's network.
        prior_components: Gaussians per conditional of the prior over a latent vector (1: the
            affine flow), or components of the fitted mixture.
        prior_training: ``"elbo"`` (the handout's: the prior is trained with the model, the
            encoder's KL is against it) or ``"posterior"`` (module docstring).
        free_bits, kl_warmup_steps, beta, lr, lr_final_factor: see
            :class:`~vae_models.base.LatentVariableModel`.
    """

    def __init__(
        self,
        prior: str = "normal",
        latent_shape: tuple[int, int, int] = (16, 8, 8),
        n_filters: int = 128,
        n_layers: int = 5,
        prior_filters: int = 64,
        prior_components: int = 1,
        prior_training: str = "elbo",
        free_bits: float = 0.0,
        kl_warmup_steps: int = 0,
        beta: float = 1.0,
        lr: float = 1e-3,
        lr_final_factor: float = 1.0,
    ) -> None:
        check(prior_training=prior_training, choices=PRIOR_TRAININGS)
        super().__init__(
            latent_shape, n_filters, n_layers, lr, lr_final_factor, free_bits, kl_warmup_steps, beta
        )
        self.save_hyperparameters()
        self.prior_training = prior_training
        self.decoder = decoder(n_filters, self.latent_shape, n_layers, IMAGE_SHAPE[0])
        self.decoder_logvar = nn.Parameter(torch.full((1, IMAGE_SHAPE[0], 1, 1), DECODER_INIT[1]))
        with torch.no_grad():
            self.decoder[-1].bias.fill_(DECODER_INIT[0])
        self.prior = make_prior(prior, self.latent_shape, prior_filters, prior_components)
        self._posterior_draws: tuple[Tensor, Tensor, Tensor] | None = None  # z, μ, log σ²

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
        ``[B, *latent_shape]``."""
        mu, logvar = self.encoder(2.0 * y - 1.0).chunk(2, dim=1)
        return mu, soft_clamp(logvar, *LATENT_LOGVAR_RANGE)

    def decode(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """p(y|z) = N(μ, diag exp(logvar)): ``(μ, logvar)``, each ``[B, 3, 32, 32]``."""
        mu = self.decoder(z)
        return mu, soft_clamp(self.decoder_logvar, *PIXEL_LOGVAR_RANGE).expand_as(mu)

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(μ, logvar) of q(z|y) at the bin centres y = (x + ½)/256 of 8-bit images ``x``."""
        self.check_images(x)
        return self.encode((x.to(self.dtype) + 0.5) / N_LEVELS)

    def decode_to_pixels(self, z: Tensor) -> Tensor:
        """The decoder mean μ(z) as 8-bit images ``LongTensor[B, 3, 32, 32]``."""
        return self.quantize(self.decode(z)[0])

    # ------------------------------------------------------------------ bound (nats)
    def recon_and_latent(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """One draw of the bound's pieces for 8-bit images ``x``: ``(recon, z, μ_z, log σ²_z)``,
        recon = −log p(y|z) + D ln 256 per example (nats) at y = (x + u)/256 and the
        reparameterised z ~ q(z|y) (random numbers u, then the z noise)."""
        self.check_images(x)
        y = self.dequantize(x)
        mu_z, logvar_z = self.encode(y)
        z = reparameterize(mu_z, logvar_z)
        if self.training and self.prior_training == "posterior":
            self._posterior_draws = (z, mu_z, logvar_z)
        mu_y, logvar_y = self.decode(z)
        log_py = gaussian_log_prob_per_dim(y, mu_y, logvar_y).flatten(1).sum(-1)
        return DISCRETISATION_NATS - log_py, z, mu_z, logvar_z

    def loss_terms(self, x: Tensor) -> dict[str, Tensor]:
        """Per-example nats: ``nll`` = −ELBO = ``recon`` + ``kl``; ``kl_ch<j>`` sum to ``kl``."""
        recon, z, mu_z, logvar_z = self.recon_and_latent(x)
        return elbo_terms(recon, self.prior.kl_elements(z, mu_z, logvar_z))

    def nll(self, x: Tensor) -> Tensor:
        """The negative ELBO per example in nats, discretisation term included (an upper bound on
        −log P(x) for the 8-bit x), one-sample estimate as in :meth:`loss_terms`."""
        return self.loss_terms(x)["nll"]

    def training_objective_change(self, batch: Any, terms: dict[str, Tensor]) -> Tensor:
        """The base's KL change; with ``prior_training="posterior"`` instead the objective of
        the N(0, I) model in place of the bound's KL, plus −log p(sg(z)) of a learned prior at
        this batch's posterior draws (nats per example, a scalar)."""
        draws, self._posterior_draws = self._posterior_draws, None
        if draws is None:
            return super().training_objective_change(batch, terms)
        z, mu_z, logvar_z = draws
        normal = elbo_terms(terms["recon"], kl_std_normal_per_dim(mu_z, logvar_z))
        change = self.kl_objective_change(normal) + normal["kl"].mean() - terms["kl"].mean()
        if self.prior.trainable:
            change = change - self.prior.log_prob(z.detach()).mean()
        return change

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample(self, n: int, decoder_noise: bool = True) -> Tensor:
        """``n`` images ``LongTensor[n, 3, 32, 32]``: z ~ p(z), then y ~ p(y|z) quantised (the
        model's own samples; the independent per-pixel noise shows as static), or with
        ``decoder_noise=False`` the decoder mean μ(z) quantised (the handout's sample figures)."""
        mu, logvar = self.decode(self.prior.sample(n))
        y = reparameterize(mu, logvar) if decoder_noise else mu
        return self.quantize(y)
