"""A textbook masked-weight PixelCNN, kept only as the speed reference of ``pixelcnn_speed.py``.

This is the form found in most course solutions: every masked convolution is a full k×k
``nn.Conv2d`` whose weight is multiplied by a 0/1 mask on every forward pass, in the default
NCHW memory layout, and sampling reruns the whole network once per pixel. It has the same layers,
parameters and outputs as :class:`ar_models.pixelcnn.PixelCNN` with its default
``channel_model="factorised"`` (the PixelCNN's ``net.*`` state dict loads into it), so the
benchmark compares the same function computed two ways. Not part of the library.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class TextbookMaskedConv2d(nn.Conv2d):
    """``conv2d(x, W ⊙ M)`` over the full k×k kernel (type A: centre excluded; B: included)."""

    def __init__(self, c_in: int, c_out: int, k: int, mask_type: str) -> None:
        super().__init__(c_in, c_out, k, padding=k // 2)
        mask = torch.zeros(k, k)
        mask[: k // 2] = 1
        mask[k // 2, : k // 2 + (mask_type == "B")] = 1
        self.register_buffer("mask", mask.expand_as(self.weight).clone())

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class TextbookBlock(nn.Module):
    """``h + body(h)``: ReLU, 1×1, ReLU, k×k, ReLU, 1×1 (type B), as the library's block."""

    def __init__(self, channels: int, bottleneck: int, kernel_size: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReLU(),
            TextbookMaskedConv2d(channels, bottleneck, 1, "B"),
            nn.ReLU(),
            TextbookMaskedConv2d(bottleneck, bottleneck, kernel_size, "B"),
            nn.ReLU(),
            TextbookMaskedConv2d(bottleneck, channels, 1, "B"),
        )

    def forward(self, h: Tensor) -> Tensor:
        return h + self.body(h)


class TextbookSpatialNet(nn.Module):
    """7×7 type-A conv, ``n_layers`` residual blocks (1×1, k×k, 1×1 type B), ReLU, two 1×1
    type-B convs."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        n_filters: int,
        n_layers: int,
        bottleneck: int,
        kernel_size: int = 3,
    ) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            TextbookMaskedConv2d(c_in, n_filters, 7, "A"),
            *[TextbookBlock(n_filters, bottleneck, kernel_size) for _ in range(n_layers)],
            nn.ReLU(),
            TextbookMaskedConv2d(n_filters, n_filters, 1, "B"),
            nn.ReLU(),
            TextbookMaskedConv2d(n_filters, c_out, 1, "B"),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class TextbookPixelCNN(nn.Module):
    """Factorised PixelCNN over C channels with K values: ``nll`` in nats, naive ``sample``."""

    def __init__(
        self,
        image_shape: tuple[int, int, int] = (3, 28, 28),
        n_categories: int = 4,
        n_filters: int = 128,
        n_layers: int = 12,
        kernel_size: int = 3,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.image_shape, self.k, self.channels_last = image_shape, n_categories, channels_last
        c = image_shape[0]
        bottleneck = max(n_filters // 2, 1)
        self.net = TextbookSpatialNet(
            c * n_categories, c * n_categories, n_filters, n_layers, bottleneck, kernel_size
        )

    def logits(self, x: Tensor) -> Tensor:
        c, h, w = self.image_shape
        x_in = F.one_hot(x, self.k).float().permute(0, 1, 4, 2, 3).flatten(1, 2)  # [B, C·K, H, W]
        if self.channels_last:  # only to separate the layout's share of the speed-up
            x_in = x_in.contiguous(memory_format=torch.channels_last)
        return self.net(x_in).reshape(-1, c, self.k, h, w)

    def nll(self, x: Tensor) -> Tensor:
        return F.cross_entropy(self.logits(x).transpose(1, 2), x, reduction="none").sum((1, 2, 3))

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        c, h, w = self.image_shape
        x = torch.zeros(n, c, h, w, dtype=torch.long)
        for row in range(h):
            for col in range(w):
                probs = F.softmax(self.logits(x)[:, :, :, row, col], dim=2)
                x[:, :, row, col] = torch.multinomial(
                    probs.view(n * c, self.k), 1, generator=generator
                ).view(n, c)
        return x
