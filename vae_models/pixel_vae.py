"""HW3 bonus: a VAE whose decoder is a PixelCNN with a limited receptive field (PixelVAE,
Gulrajani et al. 2017; VLAE, Chen et al. 2017) and a discretised mixture of logistics output
(PixelCNN++, Salimans et al. 2017).

Data. Batches are ``LongTensor[B, 3, 32, 32]`` in {0..255}, as for :class:`ConvVAE`.

Generative model. z ~ p(z) (:mod:`vae_models.priors`), then the pixels in raster order,

    P(x | z) = ∏_i P(x_i | x_{N(i)}, z),

where P(x_i | ·) is the discretised mixture of logistics of :mod:`vae_models.dmol` (R, then G | R,
then B | R, G within the pixel) and N(i) the limited receptive field of pixel i, of radius R
(:mod:`vae_models.pixel_decoder`). z enters the pixel decoder only through c(z): the handout's
decoder network (:mod:`vae_models.image_vae`) with its last conv giving ``pixel_filters // 2``
features at 32×32. P(x | z) is a distribution over the 8-bit images, so the bound needs no
dequantisation and no D·ln 256 term: per image, in nats,

    −ELBO(x) = recon + kl,   recon = −log P(x | z),   kl = log q(z|x) − log p(z)  (z ~ q(z|x)),

one reparameterised z per example and step; the KL is analytic for the normal prior. This is an
upper bound on −log P(x) in the units of :class:`ConvVAE`'s ``nll`` (D = 3·32·32), so the two are
directly comparable. The encoder q(z|x) = N(μ, diag σ²) is the handout's on v = 2x/255 − 1.

Options against posterior collapse (training objective only; the logged numbers are always the
true bound): free bits, KL warm-up and β (:mod:`vae_models.base`); ``aux_weight`` α (auxiliary
guided training, after Lucas & Verbeek 2018): a 1×1 conv of c(z) is a second, factorised decoder
that sees no pixels (:class:`~vae_models.pixel_decoder.AuxiliaryDecoder`), and the objective adds
α · (−log p_aux(y | z) + D ln 256) of the dequantised y = (x + u)/256: only z can tell it the
digit and its colours, so the encoder must put them into z, where the pixel decoder can read them
too; ``pixel_dropout``: the decoder's input pixels are hidden at random in training.

Sampling: z ~ p(z), c(z) once, then the pixels through the raster sampler of
:mod:`ar_models.sampling` (cached by default, ``cached=False`` the naive reference; the same
images from the same generator, exactly in float64). Hooks for callbacks: ``n_categories = 256``,
:meth:`posterior_mean`, :meth:`decode_to_pixels` (one draw x ~ P(x|z)), ``receptive_radius``,
``prior``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ar_models.base import unpack_batch
from ar_models.errors import check
from ar_models.sampling import CropStepper, raster_sample
from vae_models import dmol
from vae_models.gaussians import gaussian_log_prob_per_dim, reparameterize, soft_clamp
from vae_models.image_vae import (
    DISCRETISATION_NATS,
    IMAGE_SHAPE,
    LATENT_LOGVAR_RANGE,
    N_LEVELS,
    ImageVAE,
    decoder,
    elbo_terms,
    make_prior,
)
from vae_models.iwae import iwae_bound
from vae_models.pixel_decoder import AuxiliaryDecoder, CachedPixelCNN, ConditionalPixelCNN


class PixelVAE(ImageVAE):
    """VAE with a limited-receptive-field PixelCNN decoder for 8-bit images (HW3 bonus).

    The decoder's output is a discretised mixture of logistics; ``nll`` is the negative ELBO in
    nats (module docstring), comparable with :class:`ConvVAE`'s.

    Args:
        prior: ``"normal"``, ``"flow"`` or ``"fitted"`` (:func:`vae_models.image_vae.make_prior`).
        latent_shape, n_filters, n_layers: the encoder's and the conditioning network's (see
            :class:`~vae_models.image_vae.ImageVAE`).
        pixel_filters: F, hidden channels of the pixel decoder (c(z) has F / 2).
        receptive_radius: R, the pixel decoder reads the R rows above and R columns either side.
        n_mixtures: M, logistic components per pixel.
        aux_weight: α >= 0, weight of the auxiliary decoder's NLL in training (0: no head).
        pixel_dropout: p in [0, 1), the probability that the decoder does not see an input pixel
            in training (0: off).
        free_bits, kl_warmup_steps, beta, lr, lr_final_factor: see
            :class:`~vae_models.base.LatentVariableModel`.
    """

    decoded_label = "one draw x ~ P(x|z)"  # what decode_to_pixels gives (figure titles)

    def __init__(
        self,
        prior: str = "normal",
        latent_shape: tuple[int, int, int] = (16, 8, 8),
        n_filters: int = 128,
        n_layers: int = 5,
        pixel_filters: int = 64,
        receptive_radius: int = 4,
        n_mixtures: int = 5,
        aux_weight: float = 0.0,
        pixel_dropout: float = 0.0,
        free_bits: float = 0.0,
        kl_warmup_steps: int = 0,
        beta: float = 1.0,
        lr: float = 1e-3,
        lr_final_factor: float = 1.0,
    ) -> None:
        check(integer=True, minimum=2, pixel_filters=pixel_filters)
        check(minimum=0, aux_weight=aux_weight)
        super().__init__(
            latent_shape, n_filters, n_layers, lr, lr_final_factor, free_bits, kl_warmup_steps, beta
        )
        self.save_hyperparameters()
        cond_channels = pixel_filters // 2
        self.cond_net = decoder(n_filters, self.latent_shape, n_layers, cond_channels)
        self.pixelcnn = ConditionalPixelCNN(
            cond_channels, pixel_filters, receptive_radius, n_mixtures, float(pixel_dropout)
        )
        self.prior = make_prior(prior, self.latent_shape)
        self.aux_weight = float(aux_weight)
        self.aux_head = AuxiliaryDecoder(cond_channels) if aux_weight > 0 else None
        self._last_cond: Tensor | None = None

    @property
    def receptive_radius(self) -> int:
        """R: the decoder's output at (r, c) reads input rows r−R..r, columns c−R..c+R only."""
        return self.pixelcnn.receptive_radius

    # ------------------------------------------------------------------ the networks
    def scale(self, x: Tensor) -> Tensor:
        """Bin centres v = 2x/255 − 1 of 8-bit images, in the parameters' dtype."""
        return dmol.scale_values(x, self.dtype)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """q(z|x) = N(μ, diag exp(logvar)) for 8-bit images: ``(μ, logvar)``."""
        mu, logvar = self.encoder(self.scale(x)).chunk(2, dim=1)
        return mu, soft_clamp(logvar, *LATENT_LOGVAR_RANGE)

    def conditioning(self, z: Tensor) -> Tensor:
        """c(z): ``[B, pixel_filters // 2, 32, 32]``, the features of z the pixel decoder reads."""
        return self.cond_net(z)

    def decoder_params(self, x: Tensor, z: Tensor) -> Tensor:
        """DMOL parameters ``[B, 10·M, 32, 32]`` of P(x_i | x_{N(i)}, z) for every pixel i."""
        return self.pixelcnn(self.scale(x), self.conditioning(z))

    def log_px_given_z(self, x: Tensor, z: Tensor) -> Tensor:
        """log P(x | z) per image, ``[B]`` nats."""
        check = not self.batches_within(0, N_LEVELS - 1)
        return dmol.log_prob(x, self.decoder_params(x, z), check).flatten(1).sum(-1)

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(μ, logvar) of q(z|x) for 8-bit images ``x``."""
        self.check_images(x)
        return self.encode(x)

    # ------------------------------------------------------------------ bound (nats)
    def loss_terms(self, x: Tensor) -> dict[str, Tensor]:
        """Per-example nats: ``nll`` = −ELBO = ``recon`` + ``kl``; ``kl_ch<j>`` sum to ``kl``."""
        self.check_images(x)
        mu_z, logvar_z = self.encode(x)
        z = reparameterize(mu_z, logvar_z)
        cond = self.conditioning(z)
        log_px = dmol.log_prob(x, self.pixelcnn(self.scale(x), cond)).flatten(1).sum(-1)
        if self.training:
            self._last_cond = cond
        return elbo_terms(-log_px, self.prior.kl_elements(z, mu_z, logvar_z))

    def nll(self, x: Tensor) -> Tensor:
        """The negative ELBO per example in nats (an upper bound on −log P(x) for the 8-bit x),
        one-sample estimate as in :meth:`loss_terms`."""
        return self.loss_terms(x)["nll"]

    def log_weights(self, x: Tensor, k: int) -> Tensor:
        """log w_i = log P(x|z_i) + log p(z_i) − log q(z_i|x), z_i ~ q(z|x): ``[k, B]`` nats."""
        self.check_images(x)
        mu_z, logvar_z = self.encode(x)
        rows = []
        for _ in range(k):
            z = reparameterize(mu_z, logvar_z)
            log_q = gaussian_log_prob_per_dim(z, mu_z, logvar_z).flatten(1).sum(-1)
            rows.append(self.log_px_given_z(x, z) + self.prior.log_prob(z) - log_q)
        return torch.stack(rows)

    def iwae(self, x: Tensor, k: int) -> Tensor:
        """IWAE_k(x) ≤ log P(x) per example, ``[B]`` nats (−iwae is comparable with ``nll``)."""
        check(integer=True, minimum=1, k=k)
        return iwae_bound(self.log_weights(x, k))

    # ------------------------------------------------------------------ training objective
    def aux_nll(self, x: Tensor, cond: Tensor) -> Tensor:
        """−log p_aux(y | z) + D ln 256 of the auxiliary decoder on features ``cond`` = c(z), per
        image ``[B]`` nats, y = (x + u)/256 (module docstring)."""
        u = torch.rand(x.shape, dtype=cond.dtype, device=cond.device)
        y = (x.to(cond.dtype) + u) / N_LEVELS
        mu, logvar = self.aux_head(cond)
        return DISCRETISATION_NATS - gaussian_log_prob_per_dim(y, mu, logvar).flatten(1).sum(-1)

    def training_objective_change(self, batch: Any, terms: dict[str, Tensor]) -> Tensor:
        """Free bits, KL warm-up and β on the KL (the base's), plus α times the auxiliary
        decoder's NLL on the same c(z) (module docstring); nats per example."""
        change = self.kl_objective_change(terms)
        cond, self._last_cond = self._last_cond, None
        if self.aux_head is not None and cond is not None:
            aux_nll = self.aux_nll(unpack_batch(batch), cond).mean()
            self.log("train/aux_bpd", self.to_bpd(aux_nll.detach()), on_step=True, on_epoch=False)
            change = change + self.aux_weight * aux_nll
        return change

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def decode_to_pixels(
        self, z: Tensor, generator: torch.Generator | None = None, cached: bool = True
    ) -> Tensor:
        """One draw x ~ P(x | z) per latent, ``LongTensor[B, 3, 32, 32]``, pixel by pixel in raster
        order (the autoregressive decoder has no closed-form mean)."""
        cond = self.conditioning(z)
        if cached:
            stepper = CachedPixelCNN(self.pixelcnn, cond)
        else:
            v = torch.zeros(len(z), *IMAGE_SHAPE, dtype=cond.dtype, device=cond.device)
            stepper = CropStepper(self.pixelcnn, v, self.receptive_radius, cond)

        def draw(params: Tensor, row: int, col: int) -> tuple[Tensor, Tensor]:
            pixel = dmol.sample(params[:, :, None, None], generator)[:, :, 0, 0]
            return pixel, dmol.scale_values(pixel, cond.dtype)

        return raster_sample(stepper, IMAGE_SHAPE[1], IMAGE_SHAPE[2], draw)

    @torch.no_grad()
    def sample(
        self, n: int, generator: torch.Generator | None = None, cached: bool = True
    ) -> Tensor:
        """``n`` images ``LongTensor[n, 3, 32, 32]``: z ~ p(z), then x ~ P(x | z) pixel by pixel.
        With a ``generator`` (on the model's device) the draw is reproducible, cached or not."""
        return self.decode_to_pixels(self.prior.sample(n, generator), generator, cached)
