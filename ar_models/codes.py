"""The palette code: a bijective recoding of images with C channels in {0..K-1} that a PixelCNN can
model instead of the pixel values (p(x) = p_t(T(x)) for a bijection T, so likelihoods are those of
x).

:func:`palette_codes` reads the image in raster order, pixel j = 0 .. H·W-1, and codes each pixel
by the place of its colour in the palette of the pixels before it, so an autoregressive model of
the codes is one of the images. With the colour of a pixel read as one number
v = Σ_c x_c K^(C−1−c) in {0..K^C−1}, and P_j the list of distinct colours of pixels 0..j−1 in the
order they first appear,

    s_j = index of v_j in P_j                         if v_j is in P_j,
    s_j = |P_j| + #{colours u < v_j not in P_j}       otherwise (v_j's first appearance),

written back as C base-K digits. Decoding reads s_j < |P_j| as P_j[s_j] and otherwise as the
(s_j − |P_j|)-th colour not in P_j, so every code image is the code of exactly one image. On a
coloured digit (one background colour b at pixel 0, one foreground colour f) the codes are v(b) at
pixel 0, 0 for every later background pixel, 1 + rank(f) at the first foreground pixel and 1 for
every later one: after its first stroke pixel the model sees and predicts a binary image, whatever
the two colours.
"""

from __future__ import annotations

import torch
from torch import Tensor

#: Palette codes compare every pair of colours: at most this many colours (K^C).
MAX_PALETTE_COLOURS = 1024


def _colour_values(x: Tensor, k: int) -> Tensor:
    """``[B, C, H, W]`` → colour numbers v ``[B, H·W]`` (channel 0 most significant)."""
    weights = k ** torch.arange(x.shape[1] - 1, -1, -1, device=x.device)
    return (x * weights[:, None, None]).sum(1).flatten(1)


def _digits(v: Tensor, channels: int, k: int, height: int, width: int) -> Tensor:
    """Colour numbers ``[B, H·W]`` → ``[B, C, H, W]`` base-K digits."""
    weights = k ** torch.arange(channels - 1, -1, -1, device=v.device)
    digits = (v[:, None, :] // weights[None, :, None]) % k
    return digits.view(v.shape[0], channels, height, width)


def palette_codes(x: Tensor, k: int) -> Tensor:
    """The palette codes s = T(x) of images ``LongTensor[B, C, H, W]`` (module docstring)."""
    b, channels, height, width = x.shape
    n_colours = k**channels
    v = _colour_values(x, k)
    n_pixels = v.shape[1]
    position = torch.arange(n_pixels, device=x.device).expand(b, -1)
    first = torch.full((b, n_colours), n_pixels, dtype=torch.long, device=x.device)
    first = first.scatter_reduce(1, v, position, reduce="amin")  # first appearance of each colour
    seen = first < n_pixels
    before = (first[:, None, :] < first[:, :, None]) & seen[:, None, :]  # [b, u, u']: u' before u
    index = before.sum(-1)  # palette index of every colour that appears
    colours = torch.arange(n_colours, device=x.device)
    smaller_before = (before & (colours[None, None, :] < colours[None, :, None])).sum(-1)
    new_code = index + colours[None] - smaller_before  # |P_j| + rank among colours not in P_j
    appears_first = position == first.gather(1, v)
    s = torch.where(appears_first, new_code.gather(1, v), index.gather(1, v))
    return _digits(s, channels, k, height, width)


def from_palette_codes(s: Tensor, k: int) -> Tensor:
    """The images of palette codes ``s`` (the inverse of :func:`palette_codes`), decoded pixel by
    pixel in raster order."""
    b, channels, height, width = s.shape
    n_colours = k**channels
    codes = _colour_values(s, k)
    rows = torch.arange(b, device=s.device)
    palette = torch.zeros(b, n_colours, dtype=torch.long, device=s.device)
    size = torch.zeros(b, dtype=torch.long, device=s.device)
    seen = torch.zeros(b, n_colours, dtype=torch.bool, device=s.device)
    v = torch.empty_like(codes)
    for j in range(codes.shape[1]):
        code = codes[:, j]
        known = code < size
        unseen_rank = torch.cumsum(~seen, dim=1) - 1
        fresh = ((~seen) & (unseen_rank == (code - size)[:, None])).long().argmax(1)
        colour = torch.where(known, palette[rows, code.clamp(max=n_colours - 1)], fresh)
        v[:, j] = colour
        new = ~known
        palette[rows[new], size[new]] = colour[new]
        seen[rows[new], colour[new]] = True
        size = size + new.long()
    return _digits(v, channels, k, height, width)
