"""HW3 bonus: a VAE whose decoder is a PixelCNN with a limited receptive field (PixelVAE,
Gulrajani et al. 2017; VLAE, Chen et al. 2017) and a discretised mixture of logistics output
(PixelCNN++, Salimans et al. 2017).

Data. Batches are ``LongTensor[B, 3, 32, 32]`` in {0..255}, as for :class:`ConvVAE`.

Generative model. z ~ p(z) on an 8×8×C_z latent (N(0, I), or the autoregressive flow of
:mod:`vae_models.flow_prior`), then the pixels in raster order,

    P(x | z) = ∏_i P(x_i | x_{N(i)}, z),

where P(x_i | ·) is the discretised mixture of logistics of :mod:`vae_models.dmol` (R, then G | R,
then B | R, G within the pixel) and N(i) is the **limited receptive field** of pixel i (below). Its
parameters come from a :class:`ConditionalPixelCNN` that reads the pixels in N(i) and features of z
at pixel i. P(x | z) is a distribution over the 8-bit images, so the bound needs no dequantisation
and no D·ln 256 term: per image, in nats,

    −ELBO(x) = recon + kl,   recon = −log P(x | z),   kl = log q(z|x) − log p(z)  (z ~ q(z|x)),

one reparameterised z per example and step; the KL is analytic for the normal prior. This is an
upper bound on −log P(x) in the same units as :class:`ConvVAE`'s ``nll`` (D = 3·32·32 dimensions,
bits/dim = nll / (D ln 2)), so the two are directly comparable. ``loss_terms`` returns ``nll``,
``kl``, ``recon`` and the KL of each latent channel ``kl_ch<j>``, logged as ``<stage>/bpd``,
``kl_bpd``, ``recon_bpd``, ``kl_ch<j>_bpd`` like ConvVAE.
The latent-use diagnostics of :mod:`vae_models.base` (``<stage>/active_units``, ``<stage>/mi_nats``)
are logged per validation and test epoch from q(z|x).

Networks.

* Encoder q(z|x) = N(μ, diag σ²): :func:`vae_models.conv_vae.encoder` on v = 2x/255 − 1 (the
  handout's conv stack, ``width``, ``n_res_blocks``), log-variances soft-clamped like ConvVAE.
* Conditioning network: :func:`vae_models.conv_vae.decoder` (3×3 conv, gated residual stack, two
  transposed 4×4/2 convs) with its last conv replaced by a 3×3 conv to ``cond_channels`` features
  c(z) at 32×32. These features are the only way z enters the pixel decoder.
* :class:`ConditionalPixelCNN` (F = ``pixel_filters``, M = ``n_mixtures``):

      h = A_{k0}([v, 1]) + W_0 c                              type-A k0×k0 masked conv of the pixels
      h = h + a ⊙ σ(g),  [a, g] = B_k(elu(h)) + W_l c         ``pixel_layers`` gated layers, type B
      h = U elu(h) + W_out c ;   params = V elu(h)            1×1 convs: 10·M DMOL parameters

  [v, 1] is the pixel values with a constant-1 channel appended (as in PixelCNN++: the zero
  padding then differs from a mid-grey pixel, so the network sees the image's edges). W_· are
  1×1 convs of c(z) added before each nonlinearity, so the output at pixel i depends on z
  (through c at pixel i, which sees all of z) and on the pixels of N(i) only. The DMOL's channel
  coefficients then make G depend on R and B on R, G of the same pixel. The output biases of the
  log-scales start spread evenly over the M components from −6 to −1 (``LOG_SCALE_INIT``).

Receptive field. With p0 = k0 // 2, p = k // 2, L = ``pixel_layers``, the output at (r, c) reads the
input pixel (r + dr, c + dc) exactly for the offsets in the Minkowski sum of the layers' mask
offsets (:func:`receptive_field`), R = p0 + L·p = ``receptive_radius``:

* dr = 0: dc = −R .. −1 (the R pixels to the left);
* dr = −j, j = 1..R: dc = −R .. min(R, max(p0 + (j−1)·p, j·p − 1)).

This is the box of rows r−R..r−1, columns c−R..c+R plus the R pixels to the left in the current
row, minus the usual PixelCNN blind spot at its upper right (for L = 0 the single type-A mask,
without a blind spot). Nothing at or after (r, c) in raster order is read; pixels outside the image
are zero padding. The default k0 = 5, k = 3, L = 2 gives R = 4.

Sampling (:meth:`PixelVAE.sample`): z ~ p(z), c(z) once, then the pixels in raster order. By
default **cached**: :class:`CachedPixelCNN` keeps the input of every k×k masked conv and computes
only the new pixel's activations in each layer (Ramachandran et al. 2017), about one decoder pass
in all. ``cached=False`` is the naive reference: the decoder on the crop of the image that the pixel
can see (rows r−R..r, columns c−R..c+R), one small pass per pixel. Both draw the same images from
the same random numbers (exactly in float64; in float32 their rounding can move a value across a
bin edge). The DMOL is then sampled at the pixel (R, G | R, B | R, G).

Options against posterior collapse (training only; the logged numbers are always the true bound):
``free_bits`` λ (nats per latent channel, Kingma et al. 2016): the training objective is
recon + Σ_j max(λ, mean over the batch of kl_ch<j>); ``kl_warmup_steps``: the KL is weighted by
min(1, step / kl_warmup_steps); ``aux_weight`` α (auxiliary guided training, after Lucas & Verbeek
2018): a 1×1 conv of c(z) gives a second, *factorised* decoder that sees no pixels, the
:class:`~vae_models.conv_vae.ConvVAE` likelihood p_aux(y | z) = N(μ(c(z)), diag σ²) with one
learned σ²_c per colour channel (:class:`AuxiliaryDecoder`) of the dequantised y = (x + u)/256, and
the objective adds α · (−log p_aux(y | z) + D ln 256). Only z can tell p_aux the digit and its
colours, so the encoder must put them into z and c(z), where the pixel decoder can read them too.
The auxiliary head is not part of the model P(x | z) (the bound and sampling never read it).

Hooks for callbacks: ``n_categories = 256``, :meth:`posterior_mean`, :meth:`decode_to_pixels`
(one draw of x ~ P(x|z): the decoder has no closed-form mean), ``sample(n, generator=None,
cached=True)``, ``receptive_radius``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ar_models.base import check_categorical, unpack_batch
from ar_models.errors import ModelConfigError, check
from ar_models.incremental import MaskedConvCache
from ar_models.masked_conv import MaskedConv2d, raster_mask
from vae_models import dmol
from vae_models.base import LatentVariableModel
from vae_models.conv_vae import (  # the same data, latent and priors as the HW3 §2 VAE
    BASE_LATENT_SIDE,
    DECODER_INIT,
    IMAGE_SHAPE,
    LATENT_LOGVAR_RANGE,
    N_LEVELS,
    PIXEL_LOGVAR_RANGE,
    PRIORS,
    check_latent_side,
    decoder,
    elbo_terms,
    encoder,
    flow_prior_or_none,
    prior_log_prob_elements,
)
from vae_models.gaussians import gaussian_log_prob_per_dim, reparameterize, soft_clamp
from vae_models.iwae import iwae_bound

#: Initial log-scales of the decoder's components, spread evenly from the first to the second.
LOG_SCALE_INIT = (-6.0, -1.0)


def receptive_field(first_kernel: int, kernel: int, n_layers: int) -> Tensor:
    """The input offsets the output at a pixel reads: ``BoolTensor[R + 1, 2R + 1]``, entry
    [R + dr, R + dc] for the offset (dr, dc), dr ∈ −R..0, dc ∈ −R..R.

    The Minkowski sum of the taps of a type-A k0×k0 mask and ``n_layers`` type-B k×k masks
    (a tap (i, j) of a k×k mask reads the offset (i − k//2, j − k//2)); 1×1 convs and pointwise
    operations add nothing."""
    offsets = {(0, 0)}
    for size, kind in [(first_kernel, "A")] + [(kernel, "B")] * n_layers:
        half = size // 2
        taps = [(i - half, j - half) for i, j in raster_mask(size, kind).nonzero().tolist()]
        offsets = {(r + i, c + j) for r, c in offsets for i, j in taps}
    radius = first_kernel // 2 + n_layers * (kernel // 2)
    field = torch.zeros(radius + 1, 2 * radius + 1, dtype=torch.bool)
    for dr, dc in offsets:
        field[radius + dr, radius + dc] = True
    return field


def dmol_output_conv(in_channels: int, n_mixtures: int) -> nn.Conv2d:
    """A 1×1 conv to the ``10·M`` DMOL parameters whose log-scale biases start spread evenly over
    the M components from ``LOG_SCALE_INIT[0]`` (a few grey levels) to ``LOG_SCALE_INIT[1]`` (a
    broad one), so that some components specialise in exact values and others in the rest from
    the first step (not from the handout)."""
    conv = nn.Conv2d(in_channels, dmol.n_params(n_mixtures), 1)
    with torch.no_grad():
        m = n_mixtures
        conv.bias[4 * m : 7 * m] = torch.linspace(*LOG_SCALE_INIT, m).repeat(3)
    return conv


#: Variance models of the auxiliary decoder: one learned σ² for all channels, or one per channel.
AUX_VARIANCES = ("shared", "channel")


def check_aux_variance(variance: str) -> None:
    """A :class:`ModelConfigError` unless ``variance`` is one of :data:`AUX_VARIANCES`."""
    if variance not in AUX_VARIANCES:
        raise ModelConfigError(f"aux_variance must be one of {AUX_VARIANCES}, got {variance!r}")


class AuxiliaryDecoder(nn.Module):
    """p_aux(y | c) = N(μ(c), diag σ²): a 1×1 conv of the features c to the mean of every pixel
    and channel, and a learned log σ² shared by all pixels and images (no pixel can be given up
    with a large variance): one for all three colour channels (``variance="shared"``, so no
    colour channel can be given up either) or one per channel (``"channel"``, as
    :class:`~vae_models.conv_vae.ConvVAE` with ``decoder_variance="channel"``). Starts at μ = ½,
    log σ² = −4 (``DECODER_INIT``)."""

    def __init__(self, in_channels: int, variance: str = "channel") -> None:
        super().__init__()
        check_aux_variance(variance)
        self.mean = nn.Conv2d(in_channels, IMAGE_SHAPE[0], 1)
        n_variances = IMAGE_SHAPE[0] if variance == "channel" else 1
        self.logvar = nn.Parameter(torch.full((1, n_variances, 1, 1), DECODER_INIT[1]))
        with torch.no_grad():
            self.mean.bias.fill_(DECODER_INIT[0])

    def forward(self, c: Tensor) -> tuple[Tensor, Tensor]:
        """(μ, log σ²), each ``[B, 3, H, W]``, log σ² soft-clamped like the ConvVAE decoder's."""
        mu = self.mean(c)
        return mu, soft_clamp(self.logvar, *PIXEL_LOGVAR_RANGE).expand_as(mu)


def with_ones(v: Tensor) -> Tensor:
    """``[B, 3, H, W]`` values → ``[B, 4, H, W]`` with a constant-1 channel appended."""
    return torch.cat([v, torch.ones_like(v[:, :1])], dim=1)


class ConditionalPixelCNN(nn.Module):
    """The pixel decoder: ``forward(v, c) -> params [B, 10·M, H, W]`` (module docstring).

    Args:
        cond_channels: channels of the conditioning features c.
        n_filters: F, channels of the hidden stream.
        n_layers: L, gated type-B layers.
        first_kernel: k0 of the type-A conv (odd, >= 3).
        kernel: k of the type-B convs (odd, >= 1).
        n_mixtures: M, logistic components.
        mean_skip: add linear paths to the DMOL means m_{k,c} (zero at the start): a type-A
            k0×k0 masked conv of the pixels (copying a neighbour's value is one weight) and a 1×1
            conv of c (a colour that z carries is one weight away).
        pixel_dropout: p in [0, 1): in training each input pixel (its values and its constant-1
            channel) is hidden with probability p (set to zero, as the padding outside the image)
            and the others are scaled by 1/(1 − p), so that the masked convs' inputs have the
            evaluation values as their mean (inverted dropout); evaluation and sampling see every
            pixel unscaled.
        image_dropout: q in [0, 1): in training, with probability q an image's pixels are all
            hidden (the decoder must take it from c alone); kept inputs are scaled by
            1/((1 − p)(1 − q)).
    """

    def __init__(
        self,
        cond_channels: int,
        n_filters: int,
        n_layers: int,
        first_kernel: int,
        kernel: int,
        n_mixtures: int,
        mean_skip: bool = False,
        pixel_dropout: float = 0.0,
        image_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.n_mixtures = n_mixtures
        self.pixel_dropout = pixel_dropout
        self.image_dropout = image_dropout
        self.receptive_radius = first_kernel // 2 + n_layers * (kernel // 2)
        # the pixels' values and a constant 1 (zero in the padding: the image's edges are visible)
        self.input_conv = MaskedConv2d(IMAGE_SHAPE[0] + 1, n_filters, first_kernel, "A")
        self.input_cond = nn.Conv2d(cond_channels, n_filters, 1)
        self.convs = nn.ModuleList(
            MaskedConv2d(n_filters, 2 * n_filters, kernel, "B") for _ in range(n_layers)
        )
        self.conds = nn.ModuleList(
            nn.Conv2d(cond_channels, 2 * n_filters, 1) for _ in range(n_layers)
        )
        self.hidden = nn.Conv2d(n_filters, n_filters, 1)
        self.hidden_cond = nn.Conv2d(cond_channels, n_filters, 1)
        self.out = dmol_output_conv(n_filters, n_mixtures)
        self.mean_skip, self.mean_cond = None, None
        if mean_skip:
            self.mean_skip = MaskedConv2d(IMAGE_SHAPE[0] + 1, 3 * n_mixtures, first_kernel, "A")
            self.mean_cond = nn.Conv2d(cond_channels, 3 * n_mixtures, 1)
            with torch.no_grad():
                for layer in (self.mean_skip, self.mean_cond):
                    layer.weight.zero_()
                    layer.bias.zero_()

    def forward(self, v: Tensor, c: Tensor) -> Tensor:
        """DMOL parameters ``[B, 10·M, H, W]`` from pixel values ``v`` ``[B, 3, H, W]`` on the
        [−1, 1] scale and conditioning features ``c`` ``[B, cond_channels, H, W]``."""
        inputs = with_ones(v)
        if self.training and (self.pixel_dropout > 0 or self.image_dropout > 0):
            keep = torch.rand_like(inputs[:, :1]) >= self.pixel_dropout
            keep = keep & (torch.rand_like(inputs[:, :1, :1, :1]) >= self.image_dropout)
            inputs = inputs * keep / ((1.0 - self.pixel_dropout) * (1.0 - self.image_dropout))
        h = self.input_conv(inputs) + self.input_cond(c)
        for conv, cond in zip(self.convs, self.conds, strict=True):
            a, g = (conv(F.elu(h)) + cond(c)).chunk(2, dim=1)
            h = h + a * torch.sigmoid(g)
        h = self.hidden(F.elu(h)) + self.hidden_cond(c)
        skip = None if self.mean_skip is None else self.mean_skip(inputs) + self.mean_cond(c)
        return self.add_mean_skip(self.out(F.elu(h)), skip)

    def add_mean_skip(self, params: Tensor, skip: Tensor | None) -> Tensor:
        """``params`` (channels on dim 1) with ``skip`` (3M channels) added to the means block."""
        if skip is None:
            return params
        m = self.n_mixtures
        return torch.cat([params[:, :m], params[:, m : 4 * m] + skip, params[:, 4 * m :]], dim=1)

    def forward_at(self, v: Tensor, c: Tensor, row: int, col: int) -> Tensor:
        """The parameters ``[B, 10·M]`` at (row, col) from the crop rows row−R..row, columns
        col−R..col+R of ``v`` and ``c``: exact, as the output there reads only that box and every
        intermediate value it needs lies in the same box (the zero padding at the crop's edges
        only changes values it never reads)."""
        radius = self.receptive_radius
        r0, c0 = max(0, row - radius), max(0, col - radius)
        c1 = min(v.shape[-1], col + radius + 1)
        out = self(v[:, :, r0 : row + 1, c0:c1], c[:, :, r0 : row + 1, c0:c1])
        return out[:, :, row - r0, col - c0]


class CachedPixelCNN:
    """Incremental evaluation of a :class:`ConditionalPixelCNN` one pixel at a time (Ramachandran
    et al. 2017) for ``n`` images with conditioning features ``c`` ``[n, C, H, W]``.

    Once the pixels before (r, c) are drawn, every activation at (r, c) is final: each masked
    conv keeps a cache of its input, its output at (r, c) is its kernel on the cached window, and
    the 1×1 convs and nonlinearities act on the pixel's own vectors. The conditioning terms
    W_l c are computed for the whole image up front. Per pixel, in raster order:
    ``params = net.step(r, c)``, draw the pixel, then ``net.write_input(r, c, v_pixel)``.
    """

    def __init__(self, net: ConditionalPixelCNN, c: Tensor) -> None:
        n, _, height, width = c.shape
        self.net = net

        def position_major(t: Tensor) -> Tensor:  # [n, C, H, W] -> [H, W, n, C]
            return t.permute(2, 3, 0, 1).contiguous()

        self.input_cond = position_major(net.input_cond(c))
        self.conds = [position_major(cond(c)) for cond in net.conds]
        self.hidden_cond = position_major(net.hidden_cond(c))
        self.input_cache = MaskedConvCache(net.input_conv, n, height, width)
        self.skip_cache, self.mean_cond = None, None
        if net.mean_skip is not None:
            self.skip_cache = MaskedConvCache(net.mean_skip, n, height, width)
            self.mean_cond = position_major(net.mean_cond(c))
        self.caches = [MaskedConvCache(conv, n, height, width) for conv in net.convs]

    def write_input(self, row: int, col: int, v: Tensor) -> None:
        """Record the drawn pixel's values ``[n, 3]`` on the [−1, 1] scale."""
        inputs = torch.cat([v, torch.ones_like(v[:, :1])], dim=1)
        self.input_cache.write(row, col, inputs)
        if self.skip_cache is not None:
            self.skip_cache.write(row, col, inputs)

    def step(self, row: int, col: int) -> Tensor:
        """The DMOL parameters ``[n, 10·M]`` at (row, col); the pixels before it must be written."""
        net = self.net
        h = self.input_cache.output(row, col) + self.input_cond[row, col]
        for cache, cond in zip(self.caches, self.conds, strict=True):
            cache.write(row, col, F.elu(h))
            a, g = (cache.output(row, col) + cond[row, col]).chunk(2, dim=-1)
            h = h + a * torch.sigmoid(g)
        h = F.linear(F.elu(h), net.hidden.weight[:, :, 0, 0], net.hidden.bias)
        h = h + self.hidden_cond[row, col]
        params = F.linear(F.elu(h), net.out.weight[:, :, 0, 0], net.out.bias)
        skip = None
        if self.skip_cache is not None:
            skip = self.skip_cache.output(row, col) + self.mean_cond[row, col]
        return net.add_mean_skip(params, skip)


class PixelVAE(LatentVariableModel):
    """VAE with a limited-receptive-field conditional PixelCNN decoder and a discretised mixture
    of logistics, for ``LongTensor[B, 3, 32, 32]`` 8-bit images; ``nll`` is the negative ELBO in
    nats (module docstring), comparable with :class:`ConvVAE`'s.

    Args:
        prior: ``"normal"`` (N(0, I)) or ``"flow"`` (autoregressive flow, VLAE).
        latent_channels: C_z, channels of the 8×8 latent.
        width: channels of the encoder's and conditioning network's widest layers (divisible by 4).
        n_res_blocks: gated residual blocks per stack of encoder and conditioning network.
        cond_channels: channels of the conditioning features c(z) (default ``pixel_filters``).
        pixel_filters: F, hidden channels of the PixelCNN decoder.
        pixel_layers: L, gated type-B masked layers of the decoder.
        first_kernel: k0, size of the decoder's type-A conv (odd, >= 3).
        kernel: k, size of the type-B convs (odd, >= 1).
        n_mixtures: M, logistic components per pixel.
        flow_filters, flow_blocks: the flow prior's PixelCNN (see :class:`ConvVAE`).
        free_bits: λ >= 0, nats per latent channel below which the KL is not penalised in
            training (0: off).
        kl_warmup_steps: training steps of the linear KL warm-up (0: off).
        beta: β >= 0, the KL's weight in training once warmed up (1: the ELBO;
            :mod:`vae_models.base`).
        aux_weight: α >= 0, weight of the auxiliary factorised decoder's NLL in the training
            objective (0: off, no auxiliary head).
        aux_variance: ``"shared"`` (one learned σ² for the three colour channels) or
            ``"channel"`` (one per channel) in the auxiliary decoder (:class:`AuxiliaryDecoder`).
        mean_skip: linear paths from the pixels (masked) and from c(z) to the DMOL means
            (:class:`ConditionalPixelCNN`).
        global_cond: the decoder (and the auxiliary head) also read the mean of c(z) over the
            image at every pixel, so that what z says about the whole image (its colours) reaches
            every pixel, the image's corners included.
        pixel_dropout: p in [0, 1), the probability that the decoder does not see an input pixel
            in training (:class:`ConditionalPixelCNN`; 0: off).
        pixel_dropout_final: with a value p₁, the dropout goes linearly from ``pixel_dropout``
            at the first step to p₁ at the trainer's last (None: constant).
        image_dropout: q in [0, 1), the probability that the decoder sees none of an image's
            pixels in training (0: off).
        latent_side: s, the latent is C_z × s × s: 8, or 4, 2, 1 (as :class:`ConvVAE`).
        lr: Adam learning rate.
        lr_final_factor: the learning rate decays along a cosine from ``lr`` to
            ``lr * lr_final_factor`` over the trainer's total steps (1.0: constant).
    """

    n_categories = N_LEVELS
    decoded_label = "one draw x ~ P(x|z)"  # what decode_to_pixels gives (Interpolations' title)

    def __init__(
        self,
        prior: str = "normal",
        latent_channels: int = 16,
        width: int = 128,
        n_res_blocks: int = 5,
        cond_channels: int | None = None,
        pixel_filters: int = 64,
        pixel_layers: int = 2,
        first_kernel: int = 5,
        kernel: int = 3,
        n_mixtures: int = 5,
        flow_filters: int = 64,
        flow_blocks: int = 3,
        free_bits: float = 0.0,
        kl_warmup_steps: int = 0,
        beta: float = 1.0,
        aux_weight: float = 0.0,
        aux_variance: str = "channel",
        mean_skip: bool = False,
        global_cond: bool = False,
        pixel_dropout: float = 0.0,
        pixel_dropout_final: float | None = None,
        image_dropout: float = 0.0,
        latent_side: int = BASE_LATENT_SIDE,
        lr: float = 1e-3,
        lr_final_factor: float = 1.0,
    ) -> None:
        check_latent_side(latent_side)
        if prior not in PRIORS:
            raise ModelConfigError(f"prior must be one of {PRIORS}, got {prior!r}")
        cond_channels = pixel_filters if cond_channels is None else cond_channels
        check(
            integer=True,
            minimum=1,
            latent_channels=latent_channels,
            width=width,
            cond_channels=cond_channels,
            pixel_filters=pixel_filters,
            n_mixtures=n_mixtures,
            flow_filters=flow_filters,
        )
        if width % 4:
            raise ModelConfigError(f"width must be divisible by 4, got {width}")
        check(
            integer=True,
            minimum=0,
            n_res_blocks=n_res_blocks,
            pixel_layers=pixel_layers,
            flow_blocks=flow_blocks,
        )
        if not (isinstance(first_kernel, int) and first_kernel >= 3 and first_kernel % 2):
            raise ModelConfigError(f"first_kernel must be an odd integer >= 3, got {first_kernel}")
        if not (isinstance(kernel, int) and kernel >= 1 and kernel % 2):
            raise ModelConfigError(f"kernel must be an odd integer >= 1, got {kernel}")
        probabilities = {"pixel_dropout": pixel_dropout, "image_dropout": image_dropout}
        if pixel_dropout_final is not None:
            probabilities["pixel_dropout_final"] = pixel_dropout_final
        for name, value in probabilities.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise ModelConfigError(f"{name} must be in [0, 1), got {value!r}")
        check(minimum=0, aux_weight=aux_weight)
        check_aux_variance(aux_variance)  # also when aux_weight is 0 (no head is built)
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
        self.cond_net = decoder(width, latent_channels, n_res_blocks, cond_channels, latent_side)
        self.pixelcnn = ConditionalPixelCNN(
            cond_channels * (2 if global_cond else 1),
            pixel_filters,
            pixel_layers,
            first_kernel,
            kernel,
            n_mixtures,
            mean_skip,
            float(pixel_dropout),
            float(image_dropout),
        )
        self.flow = flow_prior_or_none(prior, self.latent_shape, flow_filters, flow_blocks)
        self.aux_weight = float(aux_weight)
        self.global_cond = global_cond
        read = cond_channels * (2 if global_cond else 1)
        self.aux_head = AuxiliaryDecoder(read, aux_variance) if aux_weight > 0 else None
        self._last_cond: Tensor | None = None

    @property
    def n_dims(self) -> int:
        return math.prod(IMAGE_SHAPE)

    @property
    def receptive_radius(self) -> int:
        """R: the decoder's output at (r, c) reads input rows r−R..r, columns c−R..c+R only."""
        return self.pixelcnn.receptive_radius

    def receptive_field(self) -> Tensor:
        """The input offsets the decoder reads, ``BoolTensor[R + 1, 2R + 1]``
        (:func:`receptive_field`)."""
        h = self.hparams
        return receptive_field(h.first_kernel, h.kernel, h.pixel_layers)

    # ------------------------------------------------------------------ the networks
    def scale(self, x: Tensor) -> Tensor:
        """Bin centres v = 2x/255 − 1 of 8-bit images, in the parameters' dtype."""
        return dmol.scale_values(x, self.dtype)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """q(z|x) = N(μ, diag exp(logvar)) for 8-bit images: ``(μ, logvar)``, ``[B, C_z, 8, 8]``."""
        mu, logvar = self.encoder(self.scale(x)).chunk(2, dim=1)
        return mu, soft_clamp(logvar, *LATENT_LOGVAR_RANGE)

    def conditioning(self, z: Tensor) -> Tensor:
        """c(z): ``[B, cond_channels, 32, 32]``, the features of z the pixel decoder reads; with
        ``global_cond`` also their mean over the image at every pixel (``2·cond_channels``)."""
        c = self.cond_net(z)
        if not self.global_cond:
            return c
        return torch.cat([c, c.mean(dim=(2, 3), keepdim=True).expand_as(c)], dim=1)

    def decoder_params(self, x: Tensor, z: Tensor) -> Tensor:
        """DMOL parameters ``[B, 10·M, 32, 32]`` of P(x_i | x_{N(i)}, z) for every pixel i."""
        return self.pixelcnn(self.scale(x), self.conditioning(z))

    def log_px_given_z(self, x: Tensor, z: Tensor) -> Tensor:
        """log P(x | z) per image, ``[B]`` nats."""
        check = not self.batches_within(0, N_LEVELS - 1)
        return dmol.log_prob(x, self.decoder_params(x, z), check).flatten(1).sum(-1)

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(μ, logvar) of q(z|x) for 8-bit images ``x``."""
        self._check_x(x)
        return self.encode(x)

    def posterior_mean(self, x: Tensor) -> Tensor:
        """The mean of q(z|x) for 8-bit images ``x``."""
        return self.posterior(x)[0]

    def prior_log_prob_elements(self, z: Tensor) -> Tensor:
        """log p(z) per latent element, ``[B, C_z, 8, 8]`` nats."""
        return prior_log_prob_elements(z, self.flow)

    def sample_prior(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """z ~ p(z), ``[n, C_z, 8, 8]``."""
        eps = torch.randn(
            n, *self.latent_shape, generator=generator, device=self.device, dtype=self.dtype
        )
        return eps if self.flow is None else self.flow.inverse(eps)

    # ------------------------------------------------------------------ bound (nats)
    def _check_x(self, x: Tensor) -> None:
        check = not self.batches_within(0, N_LEVELS - 1)
        check_categorical(x, N_LEVELS, IMAGE_SHAPE, "PixelVAE", values=check)

    def loss_terms(self, x: Tensor) -> dict[str, Tensor]:
        """Per-example nats: ``nll`` = −ELBO = ``recon`` + ``kl``; ``kl_ch<j>`` sum to ``kl``."""
        self._check_x(x)
        mu_z, logvar_z = self.encode(x)
        z = reparameterize(mu_z, logvar_z)
        cond = self.conditioning(z)
        log_px = dmol.log_prob(x, self.pixelcnn(self.scale(x), cond)).flatten(1).sum(-1)
        terms = elbo_terms(-log_px, z, mu_z, logvar_z, self.flow)
        if self.training:
            self._last_cond = cond
        return terms

    def nll(self, x: Tensor) -> Tensor:
        """The negative ELBO per example in nats (an upper bound on −log P(x) for the 8-bit x),
        one-sample estimate as in :meth:`loss_terms`."""
        return self.loss_terms(x)["nll"]

    def log_weights(self, x: Tensor, k: int) -> Tensor:
        """log w_i = log P(x|z_i) + log p(z_i) − log q(z_i|x), z_i ~ q(z|x): ``[k, B]`` nats."""
        self._check_x(x)
        mu_z, logvar_z = self.encode(x)
        rows = []
        for _ in range(k):
            z = reparameterize(mu_z, logvar_z)
            log_q = gaussian_log_prob_per_dim(z, mu_z, logvar_z).flatten(1).sum(-1)
            log_p = self.prior_log_prob_elements(z).flatten(1).sum(-1)
            rows.append(self.log_px_given_z(x, z) + log_p - log_q)
        return torch.stack(rows)

    def iwae(self, x: Tensor, k: int) -> Tensor:
        """IWAE_k(x) ≤ log P(x) per example, ``[B]`` nats (−iwae is comparable with ``nll``)."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        return iwae_bound(self.log_weights(x, k))

    # ------------------------------------------------------------------ training objective
    def aux_nll(self, x: Tensor, cond: Tensor) -> Tensor:
        """−log p_aux(y | z) + D ln 256 of the auxiliary decoder on features ``cond`` = c(z), per
        image ``[B]`` nats, y = (x + u)/256 (module docstring)."""
        y = (
            x.to(cond.dtype) + torch.rand(x.shape, dtype=cond.dtype, device=cond.device)
        ) / N_LEVELS
        mu, logvar = self.aux_head(cond)
        log_p = gaussian_log_prob_per_dim(y, mu, logvar)
        return -log_p.flatten(1).sum(-1) + self.n_dims * math.log(N_LEVELS)

    def current_pixel_dropout(self) -> float:
        """The decoder's input dropout at this training step (constant, or the linear schedule
        from ``pixel_dropout`` to ``pixel_dropout_final`` over the trainer's total steps)."""
        start, final = self.hparams.pixel_dropout, self.hparams.pixel_dropout_final
        if final is None:
            return float(start)
        total = max(float(self.trainer.estimated_stepping_batches), 1.0)
        if not math.isfinite(total):
            raise ModelConfigError("pixel_dropout_final needs a finite max_epochs or max_steps")
        return float(start + (final - start) * min(self.global_step / total, 1.0))

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        self.pixelcnn.pixel_dropout = self.current_pixel_dropout()

    def training_objective_change(self, batch: Any, terms: dict[str, Tensor]) -> Tensor:
        """Free bits and KL warm-up on the KL (the base's), plus α times the auxiliary decoder's
        NLL on the same c(z) (module docstring); nats per example."""
        change = self.kl_objective_change(terms)
        cond, self._last_cond = self._last_cond, None
        if self.aux_head is not None and cond is not None:
            aux_nll = self.aux_nll(unpack_batch(batch), cond).mean()
            self.log("train/aux_bpd", self.to_bpd(aux_nll.detach()), on_step=True, on_epoch=False)
            change = change + self.aux_weight * aux_nll
        return change

    # ------------------------------------------------------------------ sampling
    def _draw(
        self, z: Tensor, generator: torch.Generator | None, cached: bool, dtype: torch.dtype
    ) -> Tensor:
        n = z.shape[0]
        c, h, w = IMAGE_SHAPE
        cond = self.conditioning(z)
        x = torch.zeros(n, c, h, w, dtype=torch.long, device=z.device)
        v = torch.zeros(n, c, h, w, dtype=dtype, device=z.device)  # unread until drawn (masked)
        stepper = CachedPixelCNN(self.pixelcnn, cond) if cached else None
        for row in range(h):
            for col in range(w):
                if stepper is not None:
                    params = stepper.step(row, col)
                else:
                    params = self.pixelcnn.forward_at(v, cond, row, col)
                pixel = dmol.sample(params[:, :, None, None], generator)[:, :, 0, 0]
                x[:, :, row, col] = pixel
                v[:, :, row, col] = dmol.scale_values(pixel, dtype)
                if stepper is not None:
                    stepper.write_input(row, col, v[:, :, row, col])
        return x

    @torch.no_grad()
    def decode_to_pixels(
        self, z: Tensor, generator: torch.Generator | None = None, cached: bool = True
    ) -> Tensor:
        """One draw x ~ P(x | z) per latent, ``LongTensor[B, 3, 32, 32]`` (raster order; the
        autoregressive decoder has no closed-form mean)."""
        return self._draw(z, generator, cached, self.dtype)

    @torch.no_grad()
    def sample(
        self, n: int, generator: torch.Generator | None = None, cached: bool = True
    ) -> Tensor:
        """``n`` images ``LongTensor[n, 3, 32, 32]``: z ~ p(z), then x ~ P(x | z) pixel by pixel
        (cached by default, ``cached=False`` the naive reference; module docstring). With a
        ``generator`` (on the model's device) the draw is reproducible, and both ways give the
        same images from the same generator state."""
        return self._draw(self.sample_prior(n, generator), generator, cached, self.dtype)
