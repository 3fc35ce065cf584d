"""PixelCNN (van den Oord et al. 2016) for images of C channels in {0..K-1} (HW1 §3).

The image is factorised over its pixels in raster order, i = 0 .. H·W-1,

    p(x) = ∏_i p(x_i | x_<i),      φ = f(one-hot x),

the features φ_i = f(x)_i of every pixel computed at once by a network whose output at i reads
pixels < i only: here the masked-convolution :class:`~ar_models.masked_conv.SpatialNet` (a 7×7
type-A conv, residual blocks of 1×1, 3×3, 1×1 type-B convs, two 1×1 type-B convs). The channels of
pixel i come from φ_i as ``channel_model`` says (:mod:`ar_models.channel_heads`): independent
(``"factorised"``, the handout's equation 2) or a MADE over R → G → B (``"made"``, PixelCNN-MADE,
equations 3-5). ``nll`` is in nats per image; bits/dim divide by C·H·W.

:class:`PixelCNNBase` is shared with the gated PixelCNN: the image shape, the one-hot input, the
optional palette codes, ``nll``, the hooks below and sampling, one pixel at a time through the
raster sampler of :mod:`ar_models.sampling` (cached by default, the naive loop as reference).

``palette_codes`` codes each pixel by the place of its colour in the image's palette, the colours
in order of first appearance (:mod:`ar_models.codes`, a bijection T read in raster order, so the
model of the codes, p(x) = p_t(T(x)), is exactly as normalised and autoregressive as the plain
one): on a coloured digit every later background pixel is code 0 and every later stroke pixel
code 1, whatever the two colours.

Hooks used by the callbacks (besides the :class:`~ar_models.base.DensityModel` contract):

* ``embed(x) -> FloatTensor[B, C·K, H, W]``: the network input for an image (one-hot codes);
* ``conditional_logits(x, x_in=None, y=None) -> Tensor[B, C, H, W, K]``: logits of every
  conditional, the network reading the float input ``x_in`` instead of ``embed(x)`` where given
  (so it can be differentiated: receptive fields);
* ``receptive_radius``: the output at (r, c) reads rows r-R..r and columns c-R..c+R only.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor

from ar_models import codes
from ar_models.base import DensityModel
from ar_models.channel_heads import ChannelModel, FactorisedHead, MADEHead, channel_head
from ar_models.errors import ModelConfigError
from ar_models.masked_conv import SpatialNet
from ar_models.sampling import CropStepper, IncrementalNet, Stepper, raster_sample


class PixelCNNBase(DensityModel):
    """The shared parts of the PixelCNN family (module docstring). A subclass builds ``self.net``
    and ``self.channel_head`` and implements :meth:`features` and :meth:`cached_stepper`.

    Args:
        image_shape: (C, H, W) of the images.
        n_categories: K, values per channel.
        palette_codes: model the palette codes of the module docstring instead of x.
        lr: Adam learning rate.
    """

    net: torch.nn.Module
    channel_head: FactorisedHead | MADEHead

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        n_categories: int,
        palette_codes: bool = False,
        lr: float = 1e-3,
    ) -> None:
        super().__init__(lr=lr)
        if len(image_shape) != 3 or min(image_shape) < 1:
            raise ModelConfigError(f"image_shape must be (C, H, W) >= 1, got {image_shape}")
        if n_categories < 2:
            raise ModelConfigError(f"n_categories must be >= 2, got {n_categories}")
        if palette_codes and n_categories ** image_shape[0] > codes.MAX_PALETTE_COLOURS:
            raise ModelConfigError(
                f"palette_codes supports at most {codes.MAX_PALETTE_COLOURS} colours, got "
                f"{n_categories}^{image_shape[0]} (K^C)"
            )
        self.image_shape = tuple(int(s) for s in image_shape)
        self.n_categories = n_categories
        self.palette_codes = palette_codes

    def features(self, t_in: Tensor, y: Tensor | None = None) -> Tensor:
        """φ ``[B, F, H, W]`` from the network input ``t_in`` (and labels ``y`` of a
        class-conditional model)."""
        raise NotImplementedError

    def cached_stepper(self, n: int, labels: Tensor | None) -> Stepper:
        """The network's cached stepper (:mod:`ar_models.sampling`) for ``n`` images."""
        raise NotImplementedError

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
        """The values the network models: ``x``, or its palette codes (``palette_codes``)."""
        return codes.palette_codes(x, self.n_categories) if self.palette_codes else x

    def from_codes(self, t: Tensor) -> Tensor:
        """The images of codes ``t``, the inverse of :meth:`to_codes`."""
        return codes.from_palette_codes(t, self.n_categories) if self.palette_codes else t

    def one_hot(self, t: Tensor) -> Tensor:
        """One-hot codes ``[B, C·K, H, W]`` (channel c, value k at input channel c·K + k) of
        ``t`` ``[B, C, H, W]`` (or ``[B, C]`` for one pixel: ``[B, C·K]``), in the parameters'
        dtype."""
        one_hot = F.one_hot(t, self.n_categories).to(self.dtype)  # [B, C, (H, W,) K]
        return one_hot.movedim(-1, 2).flatten(1, 2)

    def embed(self, x: Tensor) -> Tensor:
        """The network input for images ``[B, C, H, W]`` in {0..K-1}: the one-hot codes."""
        return self.one_hot(self.to_codes(x))

    def conditional_logits(
        self, x: Tensor, x_in: Tensor | None = None, y: Tensor | None = None
    ) -> Tensor:
        """Logits ``[B, C, H, W, K]`` of every conditional p(x_{c,i} | ...) (of the codes with
        ``palette_codes``); the network reads ``x_in`` (default ``embed(x)``); ``y``: the labels
        of a class-conditional model."""
        self.check_labels(y, x.shape[0])
        t = self.to_codes(x)
        t_in = self.one_hot(t) if x_in is None else x_in
        return self.channel_head.logits(t, self.features(t_in, y))

    def nll(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """-log p(x) in nats per image, ``[B]`` (= -log p_t(T(x)), T a bijection); -log p(x | y)
        for a class-conditional model given labels ``y``."""
        self.check_images(x)
        self.check_labels(y, x.shape[0])
        t = self.to_codes(x)
        return self.channel_head.nll(t, self.features(self.one_hot(t), y))

    def check_images(self, x: Tensor) -> None:
        if tuple(x.shape[1:]) != self.image_shape:
            raise ModelConfigError(
                f"{type(self).__name__} expects images of shape (C, H, W) = {self.image_shape}, "
                f"got a batch of shape {tuple(x.shape)}; set model.init_args.image_shape to match "
                "the data"
            )

    # ------------------------------------------------------------------ sampling
    def sample_labels(self, n: int, y: Tensor | None) -> Tensor | None:
        """The labels of ``n`` draws: ``y`` checked, or for a conditional model given none the
        classes in turn (0, 1, .., n_classes-1, 0, 1, ..); None when unconditional."""
        if y is None and self.n_classes:
            return torch.arange(n, device=self.device) % self.n_classes
        self.check_labels(y, n)
        return None if y is None else y.to(self.device)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        cached: bool = True,
        y: Tensor | None = None,
    ) -> Tensor:
        """``n`` images ``LongTensor[n, C, H, W]``, one pixel at a time in raster order
        (:func:`ar_models.sampling.raster_sample`); with labels ``y: LongTensor[n]`` images of
        those classes (a conditional model given none draws the classes in turn).

        ``cached`` (default): the network's cached stepper, about one forward pass in all;
        ``cached=False``: the naive reference, one pass on the crop each pixel can see. Both draw
        the same images from the same ``generator`` (on the model's device)."""
        labels = self.sample_labels(n, y)
        c, h, w = self.image_shape
        if cached:
            stepper = self.cached_stepper(n, labels)
        else:
            inputs = self.one_hot(torch.zeros(n, c, h, w, dtype=torch.long, device=self.device))
            forward = partial(self.features, y=labels)
            stepper = CropStepper(forward, inputs, self.receptive_radius)

        def draw(features: Tensor, row: int, col: int) -> tuple[Tensor, Tensor]:
            pixel = self.channel_head.draw(features, generator)
            return pixel, self.one_hot(pixel)

        return self.from_codes(raster_sample(stepper, h, w, draw))


class PixelCNN(PixelCNNBase):
    """PixelCNN over images ``LongTensor[B, C, H, W]`` in {0..K-1} (HW1 §3).

        p(x) = ∏_i p(x_i | φ_i),    φ = SpatialNet(one-hot x),

    each p(x_i | φ_i) as ``channel_model`` says. ``nll(x) = -log p(x)`` in nats per image.

    Args:
        image_shape: (C, H, W), default (3, 28, 28).
        n_categories: K, default 4.
        n_filters: width of the residual stream (128).
        n_layers: residual blocks (12).
        kernel_size: size of the blocks' middle conv (3).
        first_kernel: size of the type-A conv (7).
        dilations: dilations of the blocks' middle convs, repeated over the blocks; the receptive
            radius is first_kernel // 2 + Σ_b d_b · (kernel_size // 2).
        channel_model: ``"factorised"`` (channels independent) or ``"made"`` (PixelCNN-MADE).
        feature_dim: size of φ for the MADE, default ``n_filters``.
        made_hidden_sizes: hidden widths of the MADE (128, 128).
        palette_codes: model each pixel's place in the image's palette (module docstring).
        lr: Adam learning rate.
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int] = (3, 28, 28),
        n_categories: int = 4,
        n_filters: int = 128,
        n_layers: int = 12,
        kernel_size: int = 3,
        first_kernel: int = 7,
        dilations: tuple[int, ...] = (1,),
        channel_model: ChannelModel = "factorised",
        feature_dim: int | None = None,
        made_hidden_sizes: tuple[int, ...] = (128, 128),
        palette_codes: bool = False,
        lr: float = 1e-3,
    ) -> None:
        super().__init__(image_shape, n_categories, palette_codes, lr)
        self.save_hyperparameters()
        channels = self.image_shape[0]
        made = channel_model == "made"
        features = (feature_dim or n_filters) if made else channels * n_categories
        self.net = SpatialNet(
            channels * n_categories,
            features,
            n_filters,
            n_layers,
            kernel_size,
            first_kernel,
            tuple(dilations),
        )
        self.channel_head = channel_head(
            channel_model, channels, n_categories, features, made_hidden_sizes
        )

    def features(self, t_in: Tensor, y: Tensor | None = None) -> Tensor:
        return self.net(t_in)

    def cached_stepper(self, n: int, labels: Tensor | None) -> Stepper:
        _, h, w = self.image_shape
        return IncrementalNet(self.net.layers, n, h, w)
