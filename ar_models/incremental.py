"""Incremental (cached) evaluation of a masked-convolution network, one pixel at a time.

After Ramachandran et al. 2017, "Fast Generation for Convolutional Autoregressive Models". In a
network of one type-A conv followed by type-B layers, every layer's activation at pixel i reads
only pixels before i in raster order. So once pixels 0..i-1 are drawn, the activations of *every*
layer at pixel i are final and can be computed from activations already cached at earlier pixels:

* a k×k masked conv (k > 1) keeps a cache of its input over the whole image; its output at (r, c)
  is the masked kernel applied to the cached window of rows r-k//2..r (the rows below are masked);
* 1×1 convs, ReLU, layer norms and residual sums act on the pixel's own feature vector.

Generating an image this way costs about one forward pass in arithmetic (each activation is
computed once), instead of one pass per pixel for the naive loop.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ar_models.masked_conv import MaskedConv2d


class MaskedConvCache:
    """The padded input of one k×k masked conv with dilation d, position-major:
    ``[H + d·p, W + 2·d·p, n, C_in]``, p = k // 2, so that the window of a pixel is a few
    ``[n, C_in]`` blocks; ``output`` applies the conv's upper p + 1 kernel rows (those below the
    centre are masked) to a window. Used by :class:`IncrementalNet` and by other incremental
    samplers (the PixelVAE decoder)."""

    def __init__(self, conv: MaskedConv2d, n: int, height: int, width: int) -> None:
        k = conv.kernel_size[0]
        self.p = k // 2
        self.d = conv.dilation[0]
        self.reach = self.d * self.p  # padding: how far the taps reach
        self.buffer = conv.weight.new_zeros(
            height + self.reach, width + 2 * self.reach, n, conv.in_channels
        )
        # Rows below the centre are masked out: keep the upper p + 1 rows of the masked kernel,
        # ordered (row, column, input channel) like a flattened window.
        kernel = (conv.weight * conv.mask)[:, :, : self.p + 1, :]
        self.kernel = kernel.permute(0, 2, 3, 1).flatten(1)  # [C_out, (p+1)·k·C_in]
        self.bias = conv.bias

    def write(self, row: int, col: int, value: Tensor) -> None:
        self.buffer[row + self.reach, col + self.reach] = value

    def output(self, row: int, col: int) -> Tensor:
        """The conv's output ``[n, C_out]`` at (row, col) from the cached window."""
        reach, d = self.reach, self.d
        window = self.buffer[row : row + reach + 1 : d, col : col + 2 * reach + 1 : d]
        n = window.shape[2]
        return F.linear(window.permute(2, 0, 1, 3).reshape(n, -1), self.kernel, self.bias)


class IncrementalNet:
    """Evaluates a masked-conv ``nn.Sequential`` at one pixel at a time with per-layer caches.

    Supported modules: :class:`MaskedConv2d` (the first must be type A), ``nn.ReLU``,
    ``nn.Identity``, ``nn.LayerNorm`` subclasses over channels, and modules with a ``body``
    ``nn.Sequential`` computing a residual ``h + body(h)``.

    Usage per pixel, in raster order: ``features = net.step(r, c)``, draw the pixel, then
    ``net.write_input(r, c, embedded_pixel)``.
    """

    def __init__(self, layers: nn.Sequential, n: int, height: int, width: int) -> None:
        self.layers = layers
        self.caches: dict[int, MaskedConvCache] = {}
        self.pointwise: dict[int, Tensor] = {}  # masked 1×1 weights [C_out, C_in], made once
        for module in layers.modules():
            if isinstance(module, MaskedConv2d) and module.kernel_size[0] > 1:
                self.caches[id(module)] = MaskedConvCache(module, n, height, width)
            elif isinstance(module, MaskedConv2d):
                self.pointwise[id(module)] = module.weight[:, :, 0, 0] * module.mask[:, :, 0, 0]
        first = layers[0]
        if not (isinstance(first, MaskedConv2d) and first.mask_type == "A"):
            raise ValueError("the first layer of an incremental network must be a type-A conv")
        self.input_cache = self.caches[id(first)]

    def write_input(self, row: int, col: int, value: Tensor) -> None:
        """Record the network input ``[n, C_in]`` of a pixel once it has been drawn."""
        self.input_cache.write(row, col, value)

    def step(self, row: int, col: int) -> Tensor:
        """The network's output ``[n, C_out]`` at (row, col); pixels before it must be written."""
        h = self.input_cache.output(row, col)
        return self._run(list(self.layers)[1:], h, row, col)

    def _run(self, modules: list[nn.Module], h: Tensor, row: int, col: int) -> Tensor:
        for module in modules:
            h = self._apply(module, h, row, col)
        return h

    def _apply(self, module: nn.Module, h: Tensor, row: int, col: int) -> Tensor:
        if isinstance(module, MaskedConv2d):
            cache = self.caches.get(id(module))
            if cache is None:  # 1×1 type B: a linear map of the pixel's own features
                return F.linear(h, self.pointwise[id(module)], module.bias)
            cache.write(row, col, h)
            return cache.output(row, col)
        if isinstance(module, nn.LayerNorm):
            return F.layer_norm(h, module.normalized_shape, module.weight, module.bias, module.eps)
        if isinstance(module, (nn.ReLU, nn.Identity)):
            return module(h)
        body = getattr(module, "body", None)
        if isinstance(body, nn.Sequential):
            return h + self._run(list(body), h, row, col)
        raise TypeError(f"IncrementalNet cannot step through a {type(module).__name__}")


@torch.no_grad()
def incremental_features(layers: nn.Sequential, x_in: Tensor) -> Tensor:
    """The full output ``[n, C_out, H, W]`` of ``layers`` on ``x_in``, computed pixel by pixel
    (for tests: it must equal ``layers(x_in)``)."""
    n, _, height, width = x_in.shape
    net = IncrementalNet(layers, n, height, width)
    rows = []
    for row in range(height):
        cols = []
        for col in range(width):
            cols.append(net.step(row, col))
            net.write_input(row, col, x_in[:, :, row, col])
        rows.append(torch.stack(cols, dim=-1))
    return torch.stack(rows, dim=-2)
