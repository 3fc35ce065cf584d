"""The PixelVAE's decoder: a conditional PixelCNN with a limited receptive field (VLAE, Chen et al.
2017) whose output is a discretised mixture of logistics (PixelCNN++, :mod:`vae_models.dmol`).

:class:`ConditionalPixelCNN` (F = ``n_filters``, M = ``n_mixtures``, c = c(z) the conditioning
features of the latent at every pixel):

    h = A_{k0}([v, 1]) + W_0 c                              type-A k0×k0 masked conv of the pixels
    h = h + a ⊙ σ(g),  [a, g] = B_3(elu(h)) + W_l c         ``n_layers`` gated layers, type-B 3×3
    h = U elu(h) + W_out c ;   params = V elu(h) + S        1×1 convs: 10·M DMOL parameters

[v, 1] is the pixel values on the [−1, 1] scale with a constant-1 channel appended (as in
PixelCNN++: the zero padding then differs from a mid-grey pixel, so the network sees the image's
edges). W_· are 1×1 convs of c added before each nonlinearity, so the output at pixel i depends
on z only through c at pixel i, and on the pixels of its receptive field. S adds linear paths to
the DMOL means (zero at the start): a type-A k0×k0 masked conv of the pixels (copying a
neighbour's value is one weight) and a 1×1 conv of c. The output biases of the log-scales start
spread evenly over the M components from −6 to −1, so some components specialise in exact values
and others in the rest from the first step.

Receptive field. With p0 = k0 // 2 and L gated 3×3 layers, the output at (r, c) reads the input
pixel (r + dr, c + dc) exactly for the offsets in the Minkowski sum of the layers' mask offsets
(:func:`receptive_field`), R = p0 + L:

* dr = 0: dc = −R .. −1 (the R pixels to the left);
* dr = −j, j = 1..R: dc = −R .. min(R, max(p0 + j − 1, j − 1)),

the box of rows r−R..r−1, columns c−R..c+R plus the R pixels to the left, minus the usual
PixelCNN blind spot at its upper right. Nothing at or after (r, c) in raster order is read. A
radius R is built as :func:`layout` says: k0 = 3 for R <= 3, else 5.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ar_models.errors import check
from ar_models.masked_conv import MaskedConv2d, raster_mask
from ar_models.sampling import MaskedConvCache
from vae_models import dmol
from vae_models.gaussians import soft_clamp
from vae_models.image_vae import DECODER_INIT, IMAGE_SHAPE, PIXEL_LOGVAR_RANGE

#: Initial log-scales of the decoder's components, spread evenly from the first to the second.
LOG_SCALE_INIT = (-6.0, -1.0)
#: Kernel of the gated layers.
KERNEL_SIZE = 3


def layout(radius: int) -> tuple[int, int]:
    """(k0, L): the type-A kernel and the gated 3×3 layers of a decoder of receptive radius R =
    k0 // 2 + L, with k0 = 3 for R <= 3 and 5 above."""
    check(integer=True, minimum=1, receptive_radius=radius)
    first_kernel = 3 if radius <= 3 else 5
    return first_kernel, radius - first_kernel // 2


def receptive_field(first_kernel: int, kernel: int, n_layers: int) -> Tensor:
    """The input offsets the output at a pixel reads: ``BoolTensor[R + 1, 2R + 1]``, entry
    [R + dr, R + dc] for the offset (dr, dc), dr ∈ −R..0, dc ∈ −R..R: the Minkowski sum of the
    taps of a type-A k0×k0 mask and ``n_layers`` type-B k×k masks."""
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


def with_ones(v: Tensor) -> Tensor:
    """``[B, 3, ...]`` values → ``[B, 4, ...]`` with a constant-1 channel appended (dim 1)."""
    return torch.cat([v, torch.ones_like(v[:, :1])], dim=1)


class ConditionalPixelCNN(nn.Module):
    """The pixel decoder: ``forward(v, c) -> params [B, 10·M, H, W]`` (module docstring).

    Args:
        cond_channels: channels of the conditioning features c.
        n_filters: F, channels of the hidden stream.
        radius: R, the receptive radius (:func:`layout`).
        n_mixtures: M, logistic components.
        pixel_dropout: p in [0, 1): in training each input pixel (its values and its constant-1
            channel) is hidden with probability p and the others are scaled by 1/(1 − p)
            (inverted dropout); evaluation and sampling see every pixel unscaled.
    """

    def __init__(
        self,
        cond_channels: int,
        n_filters: int,
        radius: int,
        n_mixtures: int,
        pixel_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        check(integer=True, minimum=1, pixel_filters=n_filters, n_mixtures=n_mixtures)
        check(minimum=0, below=1, pixel_dropout=pixel_dropout)
        first_kernel, n_layers = layout(radius)
        self.first_kernel, self.n_layers = first_kernel, n_layers
        self.n_mixtures, self.pixel_dropout, self.receptive_radius = (
            n_mixtures,
            pixel_dropout,
            radius,
        )
        self.input_conv = MaskedConv2d(IMAGE_SHAPE[0] + 1, n_filters, first_kernel, "A")
        self.input_cond = nn.Conv2d(cond_channels, n_filters, 1)
        self.convs = nn.ModuleList(
            MaskedConv2d(n_filters, 2 * n_filters, KERNEL_SIZE, "B") for _ in range(n_layers)
        )
        self.conds = nn.ModuleList(
            nn.Conv2d(cond_channels, 2 * n_filters, 1) for _ in range(n_layers)
        )
        self.hidden = nn.Conv2d(n_filters, n_filters, 1)
        self.hidden_cond = nn.Conv2d(cond_channels, n_filters, 1)
        self.out = nn.Conv2d(n_filters, dmol.n_params(n_mixtures), 1)
        self.mean_skip = MaskedConv2d(IMAGE_SHAPE[0] + 1, 3 * n_mixtures, first_kernel, "A")
        self.mean_cond = nn.Conv2d(cond_channels, 3 * n_mixtures, 1)
        with torch.no_grad():
            self.out.bias[4 * n_mixtures : 7 * n_mixtures] = torch.linspace(
                *LOG_SCALE_INIT, n_mixtures
            ).repeat(3)
            for layer in (self.mean_skip, self.mean_cond):
                layer.weight.zero_()
                layer.bias.zero_()

    def forward(self, v: Tensor, c: Tensor) -> Tensor:
        """DMOL parameters ``[B, 10·M, H, W]`` from pixel values ``v`` ``[B, 3, H, W]`` on the
        [−1, 1] scale and conditioning features ``c`` ``[B, cond_channels, H, W]``."""
        inputs = with_ones(v)
        if self.training and self.pixel_dropout > 0:
            keep = torch.rand_like(inputs[:, :1]) >= self.pixel_dropout
            inputs = inputs * keep / (1.0 - self.pixel_dropout)
        h = self.input_conv(inputs) + self.input_cond(c)
        for conv, cond in zip(self.convs, self.conds, strict=True):
            a, g = (conv(F.elu(h)) + cond(c)).chunk(2, dim=1)
            h = h + a * torch.sigmoid(g)
        h = self.hidden(F.elu(h)) + self.hidden_cond(c)
        return self.add_mean_skip(self.out(F.elu(h)), self.mean_skip(inputs) + self.mean_cond(c))

    def add_mean_skip(self, params: Tensor, skip: Tensor) -> Tensor:
        """``params`` (channels on dim 1) with ``skip`` (3M channels) added to the means block."""
        m = self.n_mixtures
        return torch.cat([params[:, :m], params[:, m : 4 * m] + skip, params[:, 4 * m :]], dim=1)


class CachedPixelCNN:
    """The cached stepper (:mod:`ar_models.sampling`) of a :class:`ConditionalPixelCNN` for
    ``n`` images with conditioning features ``c`` ``[n, C, H, W]``: each masked conv keeps a
    cache of its input, its output at (r, c) is its kernel on the cached window, the 1×1 convs
    and nonlinearities act on the pixel's own vectors, and the conditioning terms W_l c are
    computed for the whole image up front. The input written per pixel is its values ``[n, 3]``
    on the [−1, 1] scale."""

    def __init__(self, net: ConditionalPixelCNN, c: Tensor) -> None:
        n, _, height, width = c.shape
        self.net = net

        def position_major(t: Tensor) -> Tensor:  # [n, C, H, W] -> [H, W, n, C]
            return t.permute(2, 3, 0, 1).contiguous()

        self.input_cond = position_major(net.input_cond(c))
        self.conds = [position_major(cond(c)) for cond in net.conds]
        self.hidden_cond = position_major(net.hidden_cond(c))
        self.mean_cond = position_major(net.mean_cond(c))
        self.input_cache = MaskedConvCache(net.input_conv, n, height, width)
        self.skip_cache = MaskedConvCache(net.mean_skip, n, height, width)
        self.caches = [MaskedConvCache(conv, n, height, width) for conv in net.convs]

    def start_row(self, row: int) -> None:
        pass

    def write_input(self, row: int, col: int, v: Tensor) -> None:
        inputs = with_ones(v)
        self.input_cache.write(row, col, inputs)
        self.skip_cache.write(row, col, inputs)

    def step(self, row: int, col: int) -> Tensor:
        """The DMOL parameters ``[n, 10·M]`` at (row, col)."""
        net = self.net
        h = self.input_cache.output(row, col) + self.input_cond[row, col]
        for cache, cond in zip(self.caches, self.conds, strict=True):
            cache.write(row, col, F.elu(h))
            a, g = (cache.output(row, col) + cond[row, col]).chunk(2, dim=-1)
            h = h + a * torch.sigmoid(g)
        h = F.linear(F.elu(h), net.hidden.weight[:, :, 0, 0], net.hidden.bias)
        h = h + self.hidden_cond[row, col]
        params = F.linear(F.elu(h), net.out.weight[:, :, 0, 0], net.out.bias)
        skip = self.skip_cache.output(row, col) + self.mean_cond[row, col]
        return net.add_mean_skip(params, skip)


class AuxiliaryDecoder(nn.Module):
    """p_aux(y | c) = N(μ(c), diag σ²): a 1×1 conv of the features c to the mean of every pixel
    and channel, and one learned log σ² per colour channel shared by all pixels and images, for
    the dequantised y = (x + u)/256 (as the ConvVAE's decoder). Starts at μ = ½, log σ² = −4."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.mean = nn.Conv2d(in_channels, IMAGE_SHAPE[0], 1)
        self.logvar = nn.Parameter(torch.full((1, IMAGE_SHAPE[0], 1, 1), DECODER_INIT[1]))
        with torch.no_grad():
            self.mean.bias.fill_(DECODER_INIT[0])

    def forward(self, c: Tensor) -> tuple[Tensor, Tensor]:
        """(μ, log σ²), each ``[B, 3, H, W]``, log σ² soft-clamped."""
        mu = self.mean(c)
        return mu, soft_clamp(self.logvar, *PIXEL_LOGVAR_RANGE).expand_as(mu)
