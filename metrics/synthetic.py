"""Images that are not digits, for calibrating the sample-quality metric: uniform noise, random
blobs (filled ellipses, a family the digit reader never saw in training) and one-colour images."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def uniform_noise(n: int, side: int, n_levels: int, generator: torch.Generator) -> Tensor:
    """Every value of every pixel uniform on {0..n_levels-1}."""
    return torch.randint(0, n_levels, (n, 3, side, side), generator=generator)


def one_colour(n: int, side: int, n_levels: int, generator: torch.Generator) -> Tensor:
    """One random colour per image."""
    colours = torch.randint(0, n_levels, (n, 3, 1, 1), generator=generator)
    return colours.expand(n, 3, side, side).clone()


def blobs(n: int, side: int, n_levels: int, generator: torch.Generator) -> Tensor:
    """1-3 filled ellipses (semi-axes 2-7 pixels, any orientation, centres in the middle half) in
    one colour on a background of another (every channel at least a quarter of the range away)."""
    rows, cols = torch.meshgrid(
        torch.arange(side).float(), torch.arange(side).float(), indexing="ij"
    )
    images = []
    for _ in range(n):
        mask = torch.zeros(side, side, dtype=torch.bool)
        for _ in range(int(torch.randint(1, 4, (1,), generator=generator))):
            cy, cx = ((0.25 + 0.5 * torch.rand(2, generator=generator)) * side).tolist()
            a, b = (2 + 5 * torch.rand(2, generator=generator)).tolist()
            t = float(torch.rand(1, generator=generator)) * math.pi
            u = (cols - cx) * math.cos(t) + (rows - cy) * math.sin(t)
            v = -(cols - cx) * math.sin(t) + (rows - cy) * math.cos(t)
            mask |= (u / a) ** 2 + (v / b) ** 2 <= 1
        background = torch.randint(0, n_levels, (3,), generator=generator)
        step = torch.randint(n_levels // 4 + 1, n_levels, (3,), generator=generator)
        foreground = (background + step) % n_levels
        images.append(torch.where(mask, foreground[:, None, None], background[:, None, None]))
    return torch.stack(images)
