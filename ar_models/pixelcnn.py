"""PixelCNN (van den Oord et al. 2016) and PixelCNN-MADE for images of C channels in {0..K-1}.

Both models factorise an image over its pixels in raster order, i = 0 .. H·W-1:

    p(x) = ∏_i p(x_i | x_<i),

with the conditionals computed for all pixels at once by a stack of masked convolutions
(:class:`SpatialNet`): a 7×7 type-A conv, residual blocks of 1×1, 3×3, 1×1 type-B convs (Figure 5
of the paper), ReLU, and two 1×1 type-B convs. Its output at pixel i reads pixels < i only.

* :class:`PixelCNN` (HW1 §3, equation 2): the channels of a pixel are independent given the
  previous pixels, p(x_i | x_<i) = ∏_c Cat(x_{i,c}; softmax(f_{i,c}(x_<i))), a K-way softmax per
  pixel and channel.
* :class:`PixelCNNMADE` (equations 3-5): the network gives a feature vector φ_i = f_i(x_<i) per
  pixel and a MADE over the C channels, conditioned on φ_i, gives
  p(x_i | x_<i) = ∏_c p(x_{i,c} | x_{i,<c}, φ_i).

``nll`` is in nats per image; bits/dim divide by C·H·W. Images enter the network one-hot
(:meth:`PixelCNNBase.embed`, C·K input channels).

``relative_to_first`` (both models) codes every pixel after the first as its difference from the
first pixel, modulo K: t_0 = x_0, t_j = (x_j - x_0) mod K channel by channel. T is a bijection of
the images, so the model of the codes, p(x) = p_t(T(x)), is exactly as normalised and as
autoregressive as the plain one (x_0 precedes every other pixel); the network reads and predicts
t. On coloured MNIST x_0 is the background colour, so the background is always code (0, 0, 0) and
a digit's strokes are one code per image: the network no longer has to learn to compare colours.

``palette_codes`` (both models) codes each pixel by the place of its colour in the image's palette,
the colours in order of first appearance (:func:`ar_models.codes.palette_codes`, also a bijection
read in raster order): on a coloured digit every background pixel after the first is code 0 and
every foreground pixel after the first is code 1, whatever the two colours, so after its first
stroke pixel the network models a binary image. ``conditional_logits`` then gives the logits of
the codes (the conditionals of a colour's digits do not map channel by channel to those of x).

Model hooks used by the callbacks (besides the :class:`DensityModel` contract):

* ``embed(x) -> FloatTensor[B, C·K, H, W]``: the network input for an image (one-hot codes);
* ``conditional_logits(x, x_in=None) -> Tensor[B, C, H, W, K]``: logits of every conditional, with
  the spatial network reading the float input ``x_in`` instead of ``embed(x)`` where given (so it
  can be differentiated: receptive fields);
* ``receptive_radius``: the output at (r, c) reads rows r-R..r and columns c-R..c+R only.
"""

from __future__ import annotations

from abc import abstractmethod

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ar_models import codes
from ar_models.base import DensityModel
from ar_models.errors import ModelConfigError
from ar_models.incremental import IncrementalNet
from ar_models.made import MADENet
from ar_models.masked_conv import MaskedConv2d


class ChannelLayerNorm(nn.LayerNorm):
    """Layer normalisation over the channels of each pixel of a ``[B, C, H, W]`` tensor (it mixes no
    pixels, so it keeps the autoregressive property)."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def _norm(channels: int, layer_norm: bool) -> nn.Module:
    return ChannelLayerNorm(channels) if layer_norm else nn.Identity()


class ResidualBlock(nn.Module):
    """``h + W₃ ∘ ReLU ∘ W₂ ∘ ReLU ∘ W₁ ∘ ReLU (h)`` with W₁: 1×1 (channels → bottleneck), W₂: k×k
    (taps ``dilation`` apart), W₃: 1×1 (bottleneck → channels), all type-B masked (Figure 5 of van
    den Oord et al. 2016).
    With ``layer_norm`` each ReLU is preceded by a layer normalisation over channels."""

    def __init__(
        self,
        channels: int,
        bottleneck: int,
        kernel_size: int,
        layer_norm: bool,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        # The ReLUs after a conv or a norm work in place (nothing else reads their input); the
        # first must not: h is also the residual.
        self.body = nn.Sequential(
            _norm(channels, layer_norm),
            nn.ReLU(),
            MaskedConv2d(channels, bottleneck, 1, "B"),
            _norm(bottleneck, layer_norm),
            nn.ReLU(inplace=True),
            MaskedConv2d(bottleneck, bottleneck, kernel_size, "B", dilation),
            _norm(bottleneck, layer_norm),
            nn.ReLU(inplace=True),
            MaskedConv2d(bottleneck, channels, 1, "B"),
        )

    def forward(self, h: Tensor) -> Tensor:
        return h + self.body(h)


class SpatialNet(nn.Module):
    """The masked-convolution network: ``[B, C_in, H, W] → [B, C_out, H, W]``, output at pixel i a
    function of the input pixels before i in raster order.

    Args:
        in_channels, out_channels: channel counts of input and output.
        n_filters: width of the residual stream (2h in Figure 5 of the paper).
        n_blocks: number of residual blocks.
        bottleneck: width inside a block (h in Figure 5).
        first_kernel: size of the first, type-A conv (7).
        block_kernel: size of the middle conv of each block (3).
        layer_norm: layer normalisation over channels before each ReLU.
        block_dilations: dilation of each block's middle conv, repeated cyclically over the
            blocks (default all 1).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        n_filters: int,
        n_blocks: int,
        bottleneck: int,
        first_kernel: int = 7,
        block_kernel: int = 3,
        layer_norm: bool = False,
        block_dilations: tuple[int, ...] = (1,),
    ) -> None:
        super().__init__()
        if min(in_channels, out_channels, n_filters, bottleneck) < 1 or n_blocks < 0:
            raise ModelConfigError(
                f"channel counts must be >= 1 and n_blocks >= 0, got in={in_channels}, "
                f"out={out_channels}, n_filters={n_filters}, bottleneck={bottleneck}, "
                f"n_blocks={n_blocks}"
            )
        if not block_dilations:
            raise ModelConfigError("block_dilations must name at least one dilation")
        dilations = [int(block_dilations[b % len(block_dilations)]) for b in range(n_blocks)]
        self.receptive_radius = first_kernel // 2 + sum(d * (block_kernel // 2) for d in dilations)
        self.layers = nn.Sequential(
            MaskedConv2d(in_channels, n_filters, first_kernel, "A"),
            *[ResidualBlock(n_filters, bottleneck, block_kernel, layer_norm, d) for d in dilations],
            _norm(n_filters, layer_norm),
            nn.ReLU(inplace=True),  # its input is the last block's sum (or a conv's output)
            MaskedConv2d(n_filters, n_filters, 1, "B"),
            _norm(n_filters, layer_norm),
            nn.ReLU(inplace=True),
            MaskedConv2d(n_filters, out_channels, 1, "B"),
        )

    def forward(self, x: Tensor) -> Tensor:
        if x.device.type == "cpu":  # oneDNN's convolutions are ~20% faster in NHWC on CPU
            x = x.contiguous(memory_format=torch.channels_last)
        return self.layers(x)

    def forward_at(self, x: Tensor, row: int, col: int) -> Tensor:
        """The output ``[B, C_out]`` at pixel (row, col), computed on the crop of ``x`` to rows
        row-R..row and columns col-R..col+R (R = ``receptive_radius``).

        Exact, not an approximation: the output at (row, col) reads only that box, and every
        intermediate value it needs lies inside the same cone of the box, so the zero padding at
        the crop's borders only changes values it never reads. This makes the naive sampler cost
        about (R+1)(2R+1)/(H·W) of a full pass per pixel instead of a full pass.
        """
        radius = self.receptive_radius
        r0, c0 = max(0, row - radius), max(0, col - radius)
        c1 = min(x.shape[-1], col + radius + 1)
        out = self(x[:, :, r0 : row + 1, c0:c1])
        return out[:, :, row - r0, col - c0]


class PixelCNNBase(DensityModel):
    """Shared parts of the PixelCNN family: image shape, input scaling, ``nll`` bookkeeping and the
    raster-order sampler. Subclasses build ``self.net`` (a :class:`SpatialNet`) and implement
    :meth:`conditional_logits`, :meth:`nll` and :meth:`_draw_pixel`.

    Args:
        image_shape: (C, H, W) of the images.
        n_categories: K, values per channel.
        lr: Adam learning rate.
        relative_to_first: model the relative codes of the module docstring instead of x.
        palette_codes: model the palette codes of the module docstring instead of x.
    """

    net: SpatialNet

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        n_categories: int,
        lr: float = 1e-3,
        relative_to_first: bool = False,
        palette_codes: bool = False,
    ) -> None:
        super().__init__(lr=lr)
        self.relative_to_first = relative_to_first
        self.palette_codes = palette_codes
        if len(image_shape) != 3 or min(image_shape) < 1:
            raise ModelConfigError(f"image_shape must be (C, H, W) >= 1, got {image_shape}")
        if n_categories < 2:
            raise ModelConfigError(f"n_categories must be >= 2, got {n_categories}")
        if relative_to_first and palette_codes:
            raise ModelConfigError("choose one of relative_to_first and palette_codes, not both")
        if palette_codes and n_categories ** image_shape[0] > codes.MAX_PALETTE_COLOURS:
            raise ModelConfigError(
                f"palette_codes supports at most {codes.MAX_PALETTE_COLOURS} colours, got "
                f"{n_categories}^{image_shape[0]} (K^C)"
            )
        self.image_shape = tuple(int(s) for s in image_shape)
        self.n_categories = n_categories

    def spatial_net(
        self,
        out_channels: int,
        n_filters: int,
        n_blocks: int,
        bottleneck: int | None,
        first_kernel: int,
        block_kernel: int,
        layer_norm: bool,
        block_dilations: tuple[int, ...] | None = None,
    ) -> SpatialNet:
        """The :class:`SpatialNet` reading the one-hot codes (C·K channels); the bottleneck
        defaults to ``n_filters // 2``."""
        return SpatialNet(
            self.image_shape[0] * self.n_categories,
            out_channels,
            n_filters,
            n_blocks,
            bottleneck or max(n_filters // 2, 1),
            first_kernel,
            block_kernel,
            layer_norm,
            tuple(block_dilations or (1,)),
        )

    # ------------------------------------------------------------------ contract
    @property
    def n_dims(self) -> int:
        c, h, w = self.image_shape
        return c * h * w

    @property
    def receptive_radius(self) -> int:
        """R: the conditionals at (r, c) read input rows r-R..r, columns c-R..c+R only."""
        return self.net.receptive_radius

    def to_codes(self, x: Tensor) -> Tensor:
        """The values the network models: ``x`` itself, its relative codes
        (``relative_to_first``) or its palette codes (``palette_codes``)."""
        if self.relative_to_first:
            return codes.relative_codes(x, self.n_categories)
        if self.palette_codes:
            return codes.palette_codes(x, self.n_categories)
        return x

    def from_codes(self, t: Tensor) -> Tensor:
        """The images of codes ``t``, the inverse of :meth:`to_codes`."""
        if self.relative_to_first:
            return codes.from_relative_codes(t, self.n_categories)
        if self.palette_codes:
            return codes.from_palette_codes(t, self.n_categories)
        return t

    def one_hot(self, t: Tensor) -> Tensor:
        """One-hot codes ``[B, C·K, H, W]`` (channel c, value k at input channel c·K + k), in the
        parameters' dtype."""
        dtype = next(self.net.parameters()).dtype
        one_hot = F.one_hot(t, self.n_categories).to(dtype)  # [B, C, H, W, K]
        return one_hot.permute(0, 1, 4, 2, 3).flatten(1, 2)

    def embed(self, x: Tensor) -> Tensor:
        """The network input for images ``[B, C, H, W]`` in {0..K-1}: the one-hot codes.

        One-hot rather than values scaled to [-1, 1]: equal colours are then a linear feature, and
        on coloured MNIST the validation bits/dim after 2 epochs of the quick-start model fall from
        0.31 to 0.18."""
        return self.one_hot(self.to_codes(x))

    def conditional_logits(
        self, x: Tensor, x_in: Tensor | None = None, y: Tensor | None = None
    ) -> Tensor:
        """Logits ``[B, C, H, W, K]`` of every conditional p(x_{c,i} | ...) over the values of x
        (of the codes with ``palette_codes``); the spatial network reads ``x_in`` (default
        ``embed(x)``); ``y``: the labels of a class-conditional model (``n_classes`` > 0), passed
        on to ``code_logits``."""
        self.check_labels(y, x.shape[0])
        t = self.to_codes(x)
        t_in = self.one_hot(t) if x_in is None else x_in
        logits = self.code_logits(t, t_in) if y is None else self.code_logits(t, t_in, y)
        if not self.relative_to_first:
            return logits
        # p(x_i = k) = p_t(t_i = (k - x_0) mod K) for every pixel i after the first
        k = self.n_categories
        shift = torch.arange(k, device=x.device) - x[:, :, 0, 0, None]  # [B, C, K]
        index = torch.remainder(shift, k)[:, :, None, None, :].expand_as(logits)
        values = logits.gather(-1, index)
        values[:, :, 0, 0] = logits[:, :, 0, 0]
        return values

    @abstractmethod
    def code_logits(self, t: Tensor, t_in: Tensor) -> Tensor:
        """Logits ``[B, C, H, W, K]`` of the conditionals of the codes ``t``, the network reading
        ``t_in`` (a class-conditional subclass takes its labels ``y`` as a third argument)."""
        raise NotImplementedError

    def nll(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """-log p(x) in nats per image, ``[B]`` (= -log p_t(T(x)), T a bijection); -log p(x | y)
        for a class-conditional model given labels ``y``."""
        self.check_images(x)
        self.check_labels(y, x.shape[0])
        t = self.to_codes(x)
        return self.code_nll(t) if y is None else self.code_nll(t, y)

    @abstractmethod
    def code_nll(self, t: Tensor) -> Tensor:
        """-log p_t(t) in nats per image (a class-conditional subclass takes ``y`` too)."""
        raise NotImplementedError

    def check_images(self, x: Tensor) -> None:
        if tuple(x.shape[1:]) != self.image_shape:
            raise ModelConfigError(
                f"{type(self).__name__} expects images of shape (C, H, W) = {self.image_shape}, "
                f"got a batch of shape {tuple(x.shape)}; set model.init_args.image_shape to match "
                "the data"
            )

    # ------------------------------------------------------------------ sampling
    @abstractmethod
    def _draw_pixel(self, features: Tensor, generator: torch.Generator | None) -> Tensor:
        """Draw all channels ``LongTensor[n, C]`` of one pixel from the network's output there."""
        raise NotImplementedError

    @torch.no_grad()
    def sample(
        self, n: int, generator: torch.Generator | None = None, cached: bool = True
    ) -> Tensor:
        """``n`` images ``LongTensor[n, C, H, W]``, one pixel at a time in raster order.

        ``cached`` (default): incremental generation (:mod:`ar_models.incremental`, after
        Ramachandran et al. 2017): each pixel computes only its own activations in every layer,
        reusing cached ones, about one forward pass in all. ``cached=False``: the naive reference,
        one pass of the spatial network per pixel (H·W passes), each on the crop of the image that
        the pixel's conditional can see (:meth:`SpatialNet.forward_at`). Both draw the same images
        from the same ``generator`` (on the model's device), which makes the draw reproducible.
        """
        c, h, w = self.image_shape
        t = torch.zeros(n, c, h, w, dtype=torch.long, device=self.device)  # codes
        t_in = self.one_hot(t)  # values at pixels not yet drawn are never read (masked)
        stepper = IncrementalNet(self.net.layers, n, h, w) if cached else None
        for row in range(h):
            for col in range(w):
                if stepper is not None:
                    features = stepper.step(row, col)
                else:
                    features = self.net.forward_at(t_in, row, col)
                t[:, :, row, col] = self._draw_pixel(features, generator)
                pixel = t[:, :, row : row + 1, col : col + 1]
                t_in[:, :, row : row + 1, col : col + 1] = self.one_hot(pixel)
                if stepper is not None:
                    stepper.write_input(row, col, t_in[:, :, row, col])
        return self.from_codes(t)


class PixelCNN(PixelCNNBase):
    """PixelCNN with channels independent given the previous pixels (equation 2 of the handout):

        p(x) = ∏_i ∏_c softmax(f(x_<i)_{i,c})[x_{i,c}],

    f a :class:`SpatialNet` with C·K output channels (a K-way softmax per pixel and channel).
    ``nll(x) = -log p(x)`` in nats per image.

    Args:
        image_shape: (C, H, W), default (3, 28, 28).
        n_categories: K, default 4.
        n_filters: residual-stream width (128).
        n_blocks: residual blocks (12).
        bottleneck: width inside a block, default ``n_filters // 2``.
        first_kernel, block_kernel: kernel sizes of the type-A conv (7) and of the blocks' middle
            conv (3).
        layer_norm: layer normalisation over channels before each ReLU.
        lr: Adam learning rate.
        relative_to_first: model each pixel's difference from the first pixel, modulo K
            (module docstring).
        palette_codes: model each pixel's place in the image's palette (module docstring).
        block_dilations: dilations of the blocks' middle convs, repeated over the blocks
            (default all 1); the receptive radius is first_kernel // 2 + Σ_b d_b · (block_kernel
            // 2).
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int] = (3, 28, 28),
        n_categories: int = 4,
        n_filters: int = 128,
        n_blocks: int = 12,
        bottleneck: int | None = None,
        first_kernel: int = 7,
        block_kernel: int = 3,
        layer_norm: bool = False,
        lr: float = 1e-3,
        relative_to_first: bool = False,
        block_dilations: tuple[int, ...] | None = None,
        palette_codes: bool = False,
    ) -> None:
        super().__init__(image_shape, n_categories, lr, relative_to_first, palette_codes)
        self.save_hyperparameters()
        self.net = self.spatial_net(
            self.image_shape[0] * n_categories,
            n_filters,
            n_blocks,
            bottleneck,
            first_kernel,
            block_kernel,
            layer_norm,
            block_dilations,
        )

    def _logits(self, x_in: Tensor) -> Tensor:
        """``[B, C, K, H, W]`` logits from the network input."""
        c, h, w = self.image_shape
        return self.net(x_in).view(-1, c, self.n_categories, h, w)

    def code_logits(self, t: Tensor, t_in: Tensor) -> Tensor:
        return self._logits(t_in).permute(0, 1, 3, 4, 2)

    def code_nll(self, t: Tensor) -> Tensor:
        logits = self._logits(self.one_hot(t)).transpose(1, 2)  # [B, K, C, H, W]
        return F.cross_entropy(logits, t, reduction="none").sum(dim=(1, 2, 3))

    def _draw_pixel(self, features: Tensor, generator: torch.Generator | None) -> Tensor:
        n, c = features.shape[0], self.image_shape[0]
        probs = F.softmax(features.reshape(n * c, self.n_categories), dim=-1)
        return torch.multinomial(probs, 1, generator=generator).view(n, c)


class PixelCNNMADE(PixelCNNBase):
    """PixelCNN whose pixels are modelled by a MADE over their channels (equations 3-5):

        φ_i = f(x_<i)_i,    p(x_i | x_<i) = ∏_c p(x_{i,c} | x_{i,<c}, φ_i),

    f a :class:`SpatialNet` with ``feature_dim`` output channels, and the per-pixel factor a
    :class:`MADENet` over C variables with K categories (channel order 0..C-1) conditioned on φ_i.
    ``nll(x) = -log p(x)`` in nats per image.

    Args:
        image_shape, n_categories, n_filters, n_blocks, bottleneck, first_kernel, block_kernel,
            layer_norm, lr, relative_to_first, block_dilations, palette_codes: see
            :class:`PixelCNN`.
        feature_dim: size of φ, default ``n_filters``.
        made_hidden_sizes: hidden widths of the MADE (128, 128).
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int] = (3, 28, 28),
        n_categories: int = 4,
        n_filters: int = 128,
        n_blocks: int = 12,
        bottleneck: int | None = None,
        first_kernel: int = 7,
        block_kernel: int = 3,
        layer_norm: bool = False,
        feature_dim: int | None = None,
        made_hidden_sizes: tuple[int, ...] = (128, 128),
        lr: float = 1e-3,
        relative_to_first: bool = False,
        block_dilations: tuple[int, ...] | None = None,
        palette_codes: bool = False,
    ) -> None:
        super().__init__(image_shape, n_categories, lr, relative_to_first, palette_codes)
        self.save_hyperparameters()
        feature_dim = feature_dim or n_filters
        self.net = self.spatial_net(
            feature_dim,
            n_filters,
            n_blocks,
            bottleneck,
            first_kernel,
            block_kernel,
            layer_norm,
            block_dilations,
        )
        channels = self.image_shape[0]
        self.made = MADENet(channels, n_categories, list(made_hidden_sizes), aux_dim=feature_dim)

    def _per_pixel(self, x: Tensor, x_in: Tensor) -> tuple[Tensor, Tensor]:
        """Pixels as rows: ``x`` as ``[B·H·W, C]`` and φ as ``[B·H·W, feature_dim]``."""
        phi = self.net(x_in)
        return x.permute(0, 2, 3, 1).flatten(0, 2), phi.permute(0, 2, 3, 1).flatten(0, 2)

    def code_logits(self, t: Tensor, t_in: Tensor) -> Tensor:
        c, h, w = self.image_shape
        pixels, phi = self._per_pixel(t, t_in)
        logits = self.made(pixels, phi)  # [B·H·W, C, K]
        return logits.view(-1, h, w, c, self.n_categories).permute(0, 3, 1, 2, 4)

    def code_nll(self, t: Tensor) -> Tensor:
        pixels, phi = self._per_pixel(t, self.one_hot(t))
        return -self.made.log_prob(pixels, phi).view(t.shape[0], -1).sum(dim=1)

    def _draw_pixel(self, features: Tensor, generator: torch.Generator | None) -> Tensor:
        # The spatial network ran once for this pixel; only the small MADE runs once per channel.
        return self.made.sample(features.shape[0], aux=features, generator=generator)
