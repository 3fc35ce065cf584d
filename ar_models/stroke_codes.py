"""Stroke codes: the colour of an image's first stroke as one fixed code, an exact bijection.

With the relative codes r of :mod:`ar_models.pixelcnn` (``relative_to_first``: r_0 = x_0 and
r_j = (x_j - x_0) mod K), the background of a coloured digit is code 0 but its strokes are one
code d ≠ 0 per image, a different one in every image, which the network must copy from earlier
stroke pixels at every stroke pixel. The stroke map S fixes that code. Let f be the first pixel
after pixel 0 whose code is not 0 (the first stroke pixel) and d = r_f; then

    s_j = r_j           for j <= f,
    s_j = σ_d(r_j)      for j > f,     σ_d swapping the codes d and e = (0, .., 0, 1).

Pixels after f with x's first stroke colour get code e in every image. S is an involution
(it leaves pixels up to f, hence f and d, unchanged), and s_j is a function of r_0..r_j alone
(f < j), so a model of the stroke codes, p(x) = p_s(S(r(x))), is exactly as normalised and as
autoregressive as one of r or x.

The conditional of pixel j's codes is a distribution over K^C joint values; in x's values, pixel
j's joint distribution is that of its codes moved by the bijection v ↦ S_j(r_j(v)), and
:func:`value_conditionals` turns it into per-channel conditionals p(x_{j,c} | x_{j,<c}, x_<j).
"""

from __future__ import annotations

import torch
from torch import Tensor

MAX_JOINT_VALUES = 4096  # K^C of the pixels whose joint distribution is enumerated


def first_stroke(r: Tensor) -> tuple[Tensor, Tensor]:
    """For relative codes ``r: LongTensor[B, C, H, W]``: the raster index f ``[B]`` of the first
    pixel after pixel 0 with a code other than 0 (H·W where there is none) and its code d
    ``[B, C]`` (0 where there is none)."""
    b, c, h, w = r.shape
    flat = r.reshape(b, c, h * w)
    stroke = (flat != 0).any(dim=1)
    stroke[:, 0] = False
    none = torch.full_like(stroke[:, 0], h * w, dtype=torch.long)
    index = torch.where(stroke.any(dim=1), stroke.int().argmax(dim=1), none)
    code = flat.gather(2, index.clamp(max=h * w - 1)[:, None, None].expand(b, c, 1))[:, :, 0]
    return index, torch.where(index[:, None] < h * w, code, torch.zeros_like(code))


def stroke_code(channels: int, like: Tensor) -> Tensor:
    """e = (0, .., 0, 1) ``[C]``, the fixed code of the first stroke colour."""
    e = torch.zeros(channels, dtype=like.dtype, device=like.device)
    e[-1] = 1
    return e


def swap_stroke_code(r: Tensor) -> Tensor:
    """S (module docstring): at every pixel after the first stroke pixel f, the codes d = r_f and
    e swapped. An involution: ``swap_stroke_code(swap_stroke_code(r)) == r``."""
    b, c, h, w = r.shape
    flat = r.reshape(b, c, h * w)
    index, d = first_stroke(r)
    e = stroke_code(c, r)[None, :, None]
    after = (torch.arange(h * w, device=r.device)[None] > index[:, None])[:, None]  # [B, 1, N]
    is_d = after & (flat == d[:, :, None]).all(dim=1, keepdim=True)
    is_e = after & (flat == e).all(dim=1, keepdim=True)
    out = torch.where(is_d, e.expand_as(flat), flat)
    out = torch.where(is_e, d[:, :, None].expand_as(flat), out)
    return out.reshape(b, c, h, w)


def joint_values(channels: int, n_categories: int, device: torch.device) -> Tensor:
    """All K^C values of a pixel ``LongTensor[K^C, C]``, value m having the base-K digits of m
    (channel 0 most significant)."""
    m = torch.arange(n_categories**channels, device=device)
    powers = n_categories ** torch.arange(channels - 1, -1, -1, device=device)
    return (m[:, None] // powers) % n_categories


def value_conditionals(log_joint: Tensor, x: Tensor, n_categories: int) -> Tensor:
    """Per-channel conditional logits ``[B, C, H, W, K]`` of the images ``x: [B, C, H, W]``.

    ``log_joint[b, h, w, m]``: log p(s_{h,w} = m-th joint value | earlier pixels) of the stroke
    codes s = S(r(x)). In x's values pixel j's joint log-probabilities are
    log p(x_j = v) = log_joint[j, S_j(r_j(v))]; channel c's logits are their log-sums over the
    later channels, with the earlier channels fixed at x's: log p(x_{j,c} = k, x_{j,<c}) (the
    softmax over k gives the conditional)."""
    b, c, h, w = x.shape
    k = n_categories
    values = joint_values(c, k, x.device)  # [M, C]
    x0 = x[:, :, 0, 0]  # [B, C]
    relative = torch.remainder(values[None] - x0[:, None], k)  # [B, M, C], pixels j >= 1
    index, d = first_stroke(torch.remainder(x - x[:, :, :1, :1], k))
    e = stroke_code(c, x)
    is_d = (relative == d[:, None]).all(dim=-1, keepdim=True)
    is_e = (relative == e).all(dim=-1, keepdim=True)
    swapped = torch.where(is_d, e, torch.where(is_e, d[:, None], relative))
    powers = k ** torch.arange(c - 1, -1, -1, device=x.device)
    n = h * w
    position = torch.arange(n, device=x.device)[None, :, None]  # [1, N, 1]
    code_index = torch.where(
        position > index[:, None, None],
        (swapped * powers).sum(-1)[:, None],
        (relative * powers).sum(-1)[:, None],
    )  # [B, N, M]
    code_index[:, 0] = (values * powers).sum(-1)  # pixel 0: its code is its value
    log_x = log_joint.reshape(b, n, -1).gather(2, code_index)  # [B, N, M] over x's values
    pixels = x.reshape(b, c, n)
    logits = []
    for channel in range(c):
        later = k ** (c - 1 - channel)
        table = log_x.reshape(b, n, k**channel, k, later)
        digits = k ** torch.arange(channel - 1, -1, -1, device=x.device)
        prefix = (pixels[:, :channel] * digits[:, None]).sum(dim=1)  # [B, N]
        picked = table.gather(2, prefix[:, :, None, None, None].expand(b, n, 1, k, later))
        logits.append(torch.logsumexp(picked[:, :, 0], dim=-1))  # [B, N, K]
    return torch.stack(logits, dim=1).reshape(b, c, h, w, k)
