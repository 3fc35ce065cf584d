"""Masked 2-D convolutions and the masked-convolution network of PixelCNN (van den Oord et al.
2016), for raster-order autoregressive image models.

A k×k kernel (k odd) centred on pixel (r, c) is multiplied by a fixed binary mask M so that the
output at (r, c) reads only pixels before (r, c) in raster order:

* type A: the rows above the centre, and the centre row left of the centre (centre excluded);
* type B: the same plus the centre tap (a pixel's own features from the previous layer).

Masks are purely spatial: every input channel of a tap is seen or not seen together, so a network
of one type-A layer followed by type-B layers has outputs at pixel i that depend on pixels < i only.

The parameters are a plain ``weight`` and ``bias`` with a ``mask`` buffer of the weight's shape,
so checkpoints load into the textbook masked-weight form and back; ``forward`` skips the rows of
the kernel below the centre, which every mask zeroes (``masked_weight_forward`` is the reference).
The module applies ``W ⊙ M`` on every call, so ``weight`` entries under zeros of the mask never
matter (their gradient is zero too).

With ``dilation`` d the taps are d pixels apart: tap (i, j) of the k×k mask reads the pixel
(r + d·(i − k//2), c + d·(j − k//2)), still before (r, c) in raster order for every unmasked tap, so
the properties above hold and the conv reaches d·(k//2) pixels instead of k//2.

:class:`SpatialNet` stacks them as in Figure 5 of the paper (the PixelCNN's network, also the flow
prior's over latent positions): a k0×k0 type-A conv, residual blocks of 1×1, k×k, 1×1 type-B
convs, ReLU, and two 1×1 type-B convs. Its output at pixel i reads the pixels before i only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ar_models.errors import ModelConfigError, check

MASK_TYPES = ("A", "B")


def raster_mask(kernel_size: int, mask_type: str) -> Tensor:
    """The k×k spatial mask: 1 on the taps before the centre in raster order (and on the centre for
    type B), 0 elsewhere."""
    if mask_type not in MASK_TYPES:
        raise ModelConfigError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ModelConfigError(f"kernel_size must be a positive odd integer, got {kernel_size}")
    if mask_type == "A" and kernel_size == 1:
        raise ModelConfigError("a 1×1 type-A mask sees nothing (it is all zeros)")
    centre = kernel_size // 2
    mask = torch.zeros(kernel_size, kernel_size)
    mask[:centre, :] = 1.0
    mask[centre, :centre] = 1.0
    if mask_type == "B":
        mask[centre, centre] = 1.0
    return mask


class MaskedConv2d(nn.Conv2d):
    """``y = conv2d(x, W ⊙ M) + b`` with 'same' zero padding and a raster-order mask ``M``.

    Args:
        in_channels, out_channels: channel counts.
        kernel_size: k, odd.
        mask_type: ``"A"`` (centre excluded, first layer) or ``"B"`` (centre included).
        dilation: d >= 1, the spacing of the taps (module docstring).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        mask_type: str,
        dilation: int = 1,
    ) -> None:
        mask = raster_mask(kernel_size, mask_type)
        if isinstance(dilation, bool) or not isinstance(dilation, int) or dilation < 1:
            raise ModelConfigError(f"dilation must be a positive integer, got {dilation!r}")
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            padding=dilation * (kernel_size // 2),
            dilation=dilation,
        )
        self.mask_type = mask_type
        self.register_buffer("mask", mask.expand_as(self.weight).clone())

    def forward(self, x: Tensor) -> Tensor:
        """The masked conv without the taps that are zero in every mask: all rows below the centre.

        Convolving the input padded by k//2 rows on top only (none below) with the upper k//2 + 1
        rows of ``W ⊙ M`` gives exactly ``masked_weight_forward`` with about (k//2 + 1)/k of its
        multiply-adds (a 1×1 type-B conv has nothing to crop).
        """
        k = self.kernel_size[0]
        if k == 1:
            return F.conv2d(x, self.weight * self.mask, self.bias)
        p, d = k // 2, self.dilation[0]
        kernel = (self.weight * self.mask)[:, :, : p + 1]
        return F.conv2d(F.pad(x, (d * p, d * p, d * p, 0)), kernel, self.bias, dilation=d)

    def masked_weight_forward(self, x: Tensor) -> Tensor:
        """The textbook form, ``conv2d(x, W ⊙ M)`` over the full k×k kernel (the reference)."""
        return F.conv2d(
            x, self.weight * self.mask, self.bias, padding=self.padding, dilation=self.dilation
        )

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, mask_type={self.mask_type}"


class ResidualBlock(nn.Module):
    """``h + W₃ ∘ ReLU ∘ W₂ ∘ ReLU ∘ W₁ ∘ ReLU (h)`` with W₁: 1×1 (channels → channels/2), W₂: k×k
    (taps ``dilation`` apart), W₃: 1×1 (back to channels), all type-B masked (Figure 5 of the
    paper)."""

    def __init__(self, channels: int, kernel_size: int, dilation: int = 1) -> None:
        super().__init__()
        half = max(channels // 2, 1)
        # The ReLUs after a conv work in place (nothing else reads their input); the first must
        # not: h is also the residual.
        self.body = nn.Sequential(
            nn.ReLU(),
            MaskedConv2d(channels, half, 1, "B"),
            nn.ReLU(inplace=True),
            MaskedConv2d(half, half, kernel_size, "B", dilation),
            nn.ReLU(inplace=True),
            MaskedConv2d(half, channels, 1, "B"),
        )

    def forward(self, h: Tensor) -> Tensor:
        return h + self.body(h)


class SpatialNet(nn.Module):
    """The masked-convolution network: ``[B, C_in, H, W] → [B, C_out, H, W]``, the output at pixel
    i a function of the input pixels before i in raster order.

    Args:
        in_channels, out_channels: channel counts of input and output.
        n_filters: width of the residual stream (2h in Figure 5 of the paper).
        n_layers: residual blocks.
        kernel_size: size of each block's middle conv (3).
        first_kernel: size of the first, type-A conv (7).
        dilations: dilation of each block's middle conv, repeated cyclically over the blocks.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        n_filters: int,
        n_layers: int,
        kernel_size: int = 3,
        first_kernel: int = 7,
        dilations: tuple[int, ...] = (1,),
    ) -> None:
        super().__init__()
        check(integer=True, minimum=1, in_channels=in_channels, out_channels=out_channels)
        check(integer=True, minimum=1, n_filters=n_filters)
        check(integer=True, minimum=0, n_layers=n_layers)
        if not dilations:
            raise ModelConfigError("dilations must name at least one dilation")
        dilation = [int(dilations[b % len(dilations)]) for b in range(n_layers)]
        self.receptive_radius = first_kernel // 2 + sum(d * (kernel_size // 2) for d in dilation)
        self.layers = nn.Sequential(
            MaskedConv2d(in_channels, n_filters, first_kernel, "A"),
            *[ResidualBlock(n_filters, kernel_size, d) for d in dilation],
            nn.ReLU(inplace=True),  # its input is the last block's sum (or a conv's output)
            MaskedConv2d(n_filters, n_filters, 1, "B"),
            nn.ReLU(inplace=True),
            MaskedConv2d(n_filters, out_channels, 1, "B"),
        )

    def forward(self, x: Tensor) -> Tensor:
        if x.device.type == "cpu":  # oneDNN's convolutions are ~20% faster in NHWC on CPU
            x = x.contiguous(memory_format=torch.channels_last)
        return self.layers(x)
