"""The raster-order sampler of every pixel model, cached or naive, over one small interface.

An autoregressive image model draws pixel i = (row, col) from a network's output at i, which reads
only the pixels before i in raster order. Every such model here (PixelCNN, the gated PixelCNN, the
PixelVAE decoder, the flow prior over latent positions) samples with :func:`raster_sample`, given

* a :class:`Stepper`: ``step(row, col)`` is the network's output ``[n, C_out]`` at the pixel,
  once every earlier pixel has been written with ``write_input(row, col, value)``;
  ``start_row(row)`` is called before the first pixel of each row;
* a ``draw(output, row, col) -> (value, network_input)``: the pixel's values ``[n, C]`` drawn
  from the output, and what the network reads of it ``[n, C_in]`` (e.g. its one-hot code).

Two kinds of stepper give the same outputs (hence, from the same generator, the same draws):

* cached (after Ramachandran et al. 2017, "Fast Generation for Convolutional Autoregressive
  Models"): every layer keeps what it has computed and computes only the new pixel's
  activations, about one forward pass in all. :class:`IncrementalNet` does this for a masked-conv
  ``nn.Sequential``; networks of other shapes bring their own (``GatedStepper``,
  ``CachedPixelCNN``), each written next to its network;
* :class:`CropStepper`, the naive reference: one pass of the whole network per pixel, on the crop
  of its input that the pixel can see (rows row-R..row, columns col-R..col+R, R the receptive
  radius). Exact, not an approximation: the output at (row, col) reads only that box, and every
  value it needs lies inside it, so the zero padding at the crop's edges changes nothing it reads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch.nn.functional as F
from torch import Tensor, nn

from ar_models.masked_conv import MaskedConv2d

#: ``draw(output [n, C_out], row, col) -> (values [n, C], network input [n, C_in])``
Draw = Callable[[Tensor, int, int], tuple[Tensor, Tensor]]


class Stepper(Protocol):
    """A network evaluated one pixel at a time in raster order (module docstring)."""

    def start_row(self, row: int) -> None: ...

    def step(self, row: int, col: int) -> Tensor: ...

    def write_input(self, row: int, col: int, value: Tensor) -> None: ...


def raster_sample(stepper: Stepper, height: int, width: int, draw: Draw) -> Tensor:
    """The pixels ``[n, C, height, width]`` drawn one at a time in raster order: at each pixel
    ``draw(stepper.step(row, col), row, col)`` gives its values and the network input that is
    written back before the next pixel."""
    image: Tensor | None = None
    for row in range(height):
        stepper.start_row(row)
        for col in range(width):
            value, network_input = draw(stepper.step(row, col), row, col)
            if image is None:
                image = value.new_zeros(*value.shape, height, width)
            image[..., row, col] = value
            stepper.write_input(row, col, network_input)
    assert image is not None, "an image has at least one pixel"
    return image


def step_through(stepper: Stepper, inputs: Tensor) -> Tensor:
    """The stepper's outputs ``[n, C_out, H, W]`` when it is fed ``inputs`` ``[n, C_in, H, W]``
    pixel by pixel (for tests: a cached stepper must give the full forward pass)."""
    height, width = inputs.shape[-2:]
    return raster_sample(stepper, height, width, lambda out, r, c: (out, inputs[:, :, r, c]))


class CropStepper:
    """The naive reference stepper: ``forward`` on the crop of ``inputs`` (and of each ``context``
    tensor, cut alike) that pixel (row, col) can see, ``radius`` R; ``inputs`` ``[n, C_in, H, W]``
    is written in place as pixels are drawn (its values after the pixel are never read)."""

    def __init__(
        self, forward: Callable[..., Tensor], inputs: Tensor, radius: int, *context: Tensor
    ) -> None:
        self.forward, self.inputs, self.radius, self.context = forward, inputs, radius, context

    def start_row(self, row: int) -> None:
        pass

    def step(self, row: int, col: int) -> Tensor:
        r0, c0 = max(0, row - self.radius), max(0, col - self.radius)
        c1 = min(self.inputs.shape[-1], col + self.radius + 1)
        crops = [t[..., r0 : row + 1, c0:c1] for t in (self.inputs, *self.context)]
        return self.forward(*crops)[:, :, row - r0, col - c0]

    def write_input(self, row: int, col: int, value: Tensor) -> None:
        self.inputs[:, :, row, col] = value


class MaskedConvCache:
    """The padded input of one k×k masked conv with dilation d, position-major:
    ``[H + d·p, W + 2·d·p, n, C_in]``, p = k // 2, so that the window of a pixel is a few
    ``[n, C_in]`` blocks; ``output`` applies the conv's upper p + 1 kernel rows (those below the
    centre are masked) to a window."""

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
    """The cached stepper of a masked-conv ``nn.Sequential`` (:class:`~ar_models.masked_conv.
    SpatialNet`'s layers): a k×k masked conv (k > 1) keeps a :class:`MaskedConvCache` of its
    input; 1×1 convs, ReLUs and residual blocks (modules with a
    ``body`` ``nn.Sequential`` computing ``h + body(h)``) act on the pixel's own feature vector.
    The first layer must be a type-A conv."""

    def __init__(self, layers: nn.Sequential, n: int, height: int, width: int) -> None:
        self.layers = list(layers)
        self.caches: dict[int, MaskedConvCache] = {}
        self.pointwise: dict[int, Tensor] = {}  # masked 1×1 weights [C_out, C_in], made once
        for module in layers.modules():
            if isinstance(module, MaskedConv2d) and module.kernel_size[0] > 1:
                self.caches[id(module)] = MaskedConvCache(module, n, height, width)
            elif isinstance(module, MaskedConv2d):
                self.pointwise[id(module)] = module.weight[:, :, 0, 0] * module.mask[:, :, 0, 0]
        first = self.layers[0]
        if not (isinstance(first, MaskedConv2d) and first.mask_type == "A"):
            raise ValueError("the first layer of an incremental network must be a type-A conv")
        self.input_cache = self.caches[id(first)]

    def start_row(self, row: int) -> None:
        pass

    def write_input(self, row: int, col: int, value: Tensor) -> None:
        self.input_cache.write(row, col, value)

    def step(self, row: int, col: int) -> Tensor:
        return self._run(self.layers[1:], self.input_cache.output(row, col), row, col)

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
        if isinstance(module, (nn.ReLU, nn.Identity)):
            return module(h)
        body = getattr(module, "body", None)
        if isinstance(body, nn.Sequential):
            return h + self._run(list(body), h, row, col)
        raise TypeError(f"IncrementalNet cannot step through a {type(module).__name__}")
