"""Reduce coloured digit images to what a digit classifier reads: a binary foreground mask.

A coloured-MNIST image is one background colour with a digit painted in one other colour; the
8-bit stand-in paints ``b + (f − b) · g / 255`` with a background colour b, a foreground colour f
and the grey digit g (anti-aliased edges). Both reduce to the binarised digit, ``g > 127.5``:

* **palette images** (``n_levels`` ≤ 16 values per channel, e.g. coloured MNIST's 4): the
  background is the image's most frequent colour; the foreground is every pixel of another colour.
* **8-bit images** (``n_levels`` > 16): the background b is the per-channel median of the pixels,
  the foreground colour f the mean of the pixels farthest from b (distance ≥ 0.95 × its 99th
  percentile); each pixel's grey level is its projection g = (x − b)·(f − b) / ‖f − b‖² on the
  segment from b to f, and the foreground is g > ½. Images whose contrast ‖f − b‖ is below
  :data:`MIN_CONTRAST` (on the [0, 1] scale) have no foreground.

Besides the mask, :func:`foreground` returns the statistics the plausibility check reads:

* ``fraction``: the share of the pixels that are foreground;
* ``background_share``: the share of the pixels that are background colour exactly (palette) or
  within a quarter of the contrast of b (8-bit);
* ``purity``: the share of the foreground pixels in the foreground's own colour — the most frequent
  colour among them (palette), or lying within a quarter of the contrast of the segment b → f
  (8-bit). Real digits have purity 1; strokes in several colours and noise have less.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

#: Palette images have at most this many values per channel; more are read as 8-bit colours.
MAX_PALETTE_LEVELS = 16
#: 8-bit images whose foreground and background colours are closer than this (RGB distance on
#: the [0, 1] scale) have no foreground.
MIN_CONTRAST = 0.1
#: Pixels within this fraction of the contrast count as the background / the foreground's colour.
COLOUR_TOLERANCE = 0.25


@dataclass
class Foreground:
    """Foreground masks ``mask`` ``FloatTensor[B, 1, H, W]`` in {0, 1} and per-image statistics
    ``fraction``, ``background_share`` and ``purity`` (``[B]``, shares in [0, 1])."""

    mask: Tensor
    fraction: Tensor
    background_share: Tensor
    purity: Tensor


def check_images(images: Tensor, n_levels: int) -> None:
    """Raise ValueError unless ``images`` is an integer ``Tensor[B, 3, H, W]`` in
    {0..n_levels-1} with n_levels >= 2."""
    if n_levels < 2:
        raise ValueError(f"n_levels must be >= 2, got {n_levels}")
    if not isinstance(images, Tensor) or images.dtype.is_floating_point or images.dim() != 4:
        got = f"{images.dtype} {tuple(images.shape)}" if isinstance(images, Tensor) else images
        raise ValueError(f"expected integer images [B, 3, H, W] in 0..{n_levels - 1}, got {got}")
    if images.shape[1] != 3:
        raise ValueError(f"expected 3 colour channels, got images of shape {tuple(images.shape)}")
    if images.numel() and (int(images.min()) < 0 or int(images.max()) >= n_levels):
        raise ValueError(
            f"expected values in 0..{n_levels - 1}, got {int(images.min())}..{int(images.max())}"
        )


def foreground(images: Tensor, n_levels: int) -> Foreground:
    """The foreground masks and statistics of images ``LongTensor[B, 3, H, W]`` in
    {0..n_levels-1} (module docstring)."""
    check_images(images, n_levels)
    if n_levels <= MAX_PALETTE_LEVELS:
        return _palette_foreground(images, n_levels)
    return _graded_foreground(images, n_levels)


def _palette_foreground(images: Tensor, n_levels: int) -> Foreground:
    b, _, h, w = images.shape
    weights = torch.tensor([n_levels**2, n_levels, 1], device=images.device)
    colours = (images.long() * weights[:, None, None]).sum(1).flatten(1)  # [B, H·W]
    n_colours = n_levels**3
    counts = torch.zeros(b, n_colours, device=images.device, dtype=torch.long)
    counts.scatter_add_(1, colours, torch.ones_like(colours))
    background = counts.argmax(1)
    mask = colours != background[:, None]
    n_foreground = mask.sum(1)
    counts.scatter_(1, background[:, None], 0)  # the foreground's colours only
    purity = counts.max(1).values / n_foreground.clamp(min=1)
    purity = torch.where(n_foreground > 0, purity, torch.zeros_like(purity))
    fraction = n_foreground / (h * w)
    return Foreground(
        mask.view(b, 1, h, w).float(), fraction.float(), 1.0 - fraction.float(), purity.float()
    )


def _graded_foreground(images: Tensor, n_levels: int) -> Foreground:
    b, _, h, w = images.shape
    x = images.double().flatten(2) / (n_levels - 1)  # [B, 3, H·W] on [0, 1]
    background = x.median(dim=2).values  # [B, 3]
    offset = x - background[:, :, None]
    distance = offset.norm(dim=1)  # [B, H·W]
    far = distance >= 0.95 * torch.quantile(distance, 0.99, dim=1, keepdim=True)
    far = far & (distance > 0)
    colour = (x * far[:, None]).sum(2) / far.sum(1, keepdim=True).clamp(min=1)  # f, [B, 3]
    direction = colour - background
    contrast = direction.norm(dim=1)  # ‖f − b‖
    safe = contrast.clamp(min=1e-12)
    grey = (offset * direction[:, :, None]).sum(1) / safe[:, None] ** 2
    residual = (offset - grey[:, None] * direction[:, :, None]).norm(dim=1)
    visible = contrast >= MIN_CONTRAST
    mask = (grey > 0.5) & visible[:, None]
    tolerance = COLOUR_TOLERANCE * safe[:, None]
    n_foreground = mask.sum(1)
    on_segment = residual < tolerance
    purity = (mask & on_segment).sum(1) / n_foreground.clamp(min=1)
    purity = torch.where(n_foreground > 0, purity, torch.zeros_like(purity))
    background_share = ((distance < tolerance) & visible[:, None]).double().mean(1)
    return Foreground(
        mask.view(b, 1, h, w).float(),
        (n_foreground / (h * w)).float(),
        background_share.float(),
        purity.float(),
    )
