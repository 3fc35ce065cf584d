"""Gated PixelCNN (van den Oord et al. 2016, "Conditional Image Generation with PixelCNN Decoders")
for images of C channels in {0..K-1}, optionally class-conditional.

Like the masked PixelCNN it factorises an image over its pixels in raster order,
p(x | y) = ∏_i p(x_i | x_<i, y), but its network (:class:`GatedNet`) has no blind spot. Two stacks
run side by side:

* the vertical stack v: its value at (r, c) reads the input rows above r only (all of them within
  the receptive field, columns c-R..c+R);
* the horizontal stack h: its value at (r, c) reads the pixels left of c in row r, and everything
  the vertical stack at (r, c) reads (the vertical-to-horizontal link).

Layer l (:class:`GatedLayer`, F filters, kernel k, p = k // 2), with e(y) learned label
embeddings (absent when unconditional):

    a_v = V_l ∗ v_{l-1}                      rows r-p..r of v_{l-1} (layer 0: rows r-p..r-1)
    a_h = H_l ∗ h_{l-1} + U_l a_v            columns c-p..c of row r (layer 0: c-p..c-1), U 1×1
    v_l = tanh(a_v,f + e_v,f(y)) ⊙ σ(a_v,g + e_v,g(y))
    g_l = tanh(a_h,f + e_h,f(y)) ⊙ σ(a_h,g + e_h,g(y))
    h_l = h_{l-1} + R_l g_l (layer 0: R_0 g_0),    s_l = S_l g_l     (R, S 1×1)

and the output φ = O_2 ReLU(O_1 ReLU(Σ_l s_l)) (skip connections to a 1×1 head). Layer 0 reads the
one-hot codes (C·K channels) with its own kernel size. The receptive radius is
R = first_kernel // 2 + n_layers · (kernel_size // 2): the conditionals at (r, c) read every input
pixel of rows r-R..r-1, columns c-R..c+R, and of row r, columns c-R..c-1.

The channels of a pixel come from φ_i as ``channel_model`` says, exactly as in the PixelCNN
(:mod:`ar_models.channel_heads`: ``"factorised"`` or ``"made"``). ``nll`` is in nats per image;
bits/dim divide by C·H·W. ``palette_codes``, ``embed``, ``conditional_logits``, ``receptive_radius``
and ``sample`` are those of :class:`~ar_models.pixelcnn.PixelCNNBase`; the cached stepper is
:class:`GatedStepper`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ar_models.channel_heads import ChannelModel, channel_head
from ar_models.errors import check
from ar_models.pixelcnn import PixelCNNBase
from ar_models.sampling import Stepper


def gate(a: Tensor) -> Tensor:
    """tanh(a_f) ⊙ σ(a_g), ``a = [a_f | a_g]`` split in halves along dim 1.

    tanh(a_f) is computed as 2σ(2a_f) - 1 (the same function): torch's CPU tanh is several times
    slower than its sigmoid."""
    f, g = a.chunk(2, dim=1)
    return (torch.sigmoid(2 * f) * 2).sub_(1) * torch.sigmoid(g)  # sigmoids: outputs kept


class GatedLayer(nn.Module):
    """One gated layer of both stacks (module docstring): ``(v, h, y) -> (v_l, h_l, s_l)``.

    The kernels have only the taps that can be read, so no masks: the vertical conv is
    (p+1)×k over rows r-p..r (the first layer p×k over rows r-p..r-1), the horizontal one 1×(p+1)
    over columns c-p..c (the first layer 1×p over c-p..c-1).

    Args:
        in_channels: channels of v_{l-1} and h_{l-1} (the first layer: of the network input).
        n_filters: F, channels of v_l and h_l (the gates have 2F pre-activations).
        kernel_size: k, odd >= 3.
        first: the first layer (strict kernels, no residual).
        last: the last layer: only s_l is computed (v_l and h_l would be read by no one).
        n_classes: size of the label embeddings e_v, e_h (0: unconditional).
    """

    def __init__(
        self,
        in_channels: int,
        n_filters: int,
        kernel_size: int,
        first: bool,
        last: bool,
        n_classes: int,
    ) -> None:
        super().__init__()
        self.p = kernel_size // 2
        self.first, self.last, self.n_filters = first, last, n_filters
        taps = self.p if first else self.p + 1
        self.vertical = nn.Conv2d(in_channels, 2 * n_filters, (taps, kernel_size))
        self.horizontal = nn.Conv2d(in_channels, 2 * n_filters, (1, taps))
        self.link = nn.Conv2d(2 * n_filters, 2 * n_filters, 1, bias=False)
        # [R_l | S_l] in one 1×1 conv
        self.out = nn.Conv2d(n_filters, n_filters if last else 2 * n_filters, 1)
        self.label_h = nn.Embedding(n_classes, 2 * n_filters) if n_classes else None
        self.label_v = nn.Embedding(n_classes, 2 * n_filters) if n_classes and not last else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Conv weights N(0, 1/fan_in) (LeCun normal: each linear map keeps the variance of its
        input; with torch's default, variance 1/(3·fan_in), the signal of the vertical stack,
        which has no residual path, shrinks with depth), biases and label embeddings zero (a
        conditional model starts as the unconditional one)."""
        for conv in (self.vertical, self.horizontal, self.link, self.out):
            nn.init.normal_(conv.weight, 0.0, conv.weight[0].numel() ** -0.5)
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)
        for embedding in (self.label_h, self.label_v):
            if embedding is not None:
                nn.init.zeros_(embedding.weight)

    def vertical_input(self, v: Tensor) -> Tensor:
        """``v`` padded so that the vertical conv's output at row r reads its rows r-p..r
        (first layer: r-p..r-1) and columns c-p..c+p, zeros outside the image."""
        p = self.p
        return F.pad(v, (p, p, p, -1 if self.first else 0))

    def horizontal_input(self, h: Tensor) -> Tensor:
        """``h`` padded so that the horizontal conv's output at column c reads its columns c-p..c
        (first layer: c-p..c-1) of the same row."""
        return F.pad(h, (self.p, -1 if self.first else 0, 0, 0))

    def forward(
        self, v: Tensor, h: Tensor, y: Tensor | None
    ) -> tuple[Tensor | None, Tensor | None, Tensor]:
        a_v = self.vertical(self.vertical_input(v))
        a_h = self.horizontal(self.horizontal_input(h)) + self.link(a_v)
        if self.label_h is not None:
            a_h = a_h + self.label_h(y)[:, :, None, None]
        out = self.out(gate(a_h))
        if self.last:
            return None, None, out
        if self.label_v is not None:
            a_v = a_v + self.label_v(y)[:, :, None, None]
        residual, skip = out[:, : self.n_filters], out[:, self.n_filters :]
        return gate(a_v), residual if self.first else h + residual, skip


class GatedNet(nn.Module):
    """The gated network: ``[B, C_in, H, W]`` (and labels ``[B]``) → ``[B, C_out, H, W]``, the
    output at pixel i a function of the input pixels before i in raster order (and of the label).

    Args:
        in_channels, out_channels: channel counts of input and output.
        n_filters: F, width of both stacks.
        n_layers: gated layers after the first one.
        kernel_size: k of those layers (odd >= 3).
        first_kernel: k of the first layer (odd >= 3).
        n_classes: classes of the label embeddings (0: unconditional).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        n_filters: int,
        n_layers: int,
        kernel_size: int,
        first_kernel: int,
        n_classes: int,
    ) -> None:
        super().__init__()
        check(
            integer=True,
            minimum=1,
            in_channels=in_channels,
            out_channels=out_channels,
            n_filters=n_filters,
        )
        check(integer=True, minimum=0, n_layers=n_layers)
        check(integer=True, minimum=3, odd=True, kernel_size=kernel_size, first_kernel=first_kernel)
        self.receptive_radius = first_kernel // 2 + n_layers * (kernel_size // 2)
        self.layers = nn.ModuleList(
            GatedLayer(
                in_channels if i == 0 else n_filters,
                n_filters,
                first_kernel if i == 0 else kernel_size,
                first=i == 0,
                last=i == n_layers,
                n_classes=n_classes,
            )
            for i in range(n_layers + 1)
        )
        self.head = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(n_filters, n_filters, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(n_filters, out_channels, 1),
        )

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        if x.device.type == "cpu":  # oneDNN's convolutions are faster in NHWC on CPU
            x = x.contiguous(memory_format=torch.channels_last)
        y = None if y is None else y.long()  # embeddings take int64 indices
        v, h, skip = x, x, None
        for layer in self.layers:
            v, h, s = layer(v, h, y)
            skip = s if skip is None else skip + s
        return self.head(skip)


class GatedPixelCNN(PixelCNNBase):
    """Gated PixelCNN without a blind spot, optionally class-conditional (HW1 bonus).

        p(x | y) = ∏_i p(x_i | φ_i),    φ = GatedNet(one-hot x, y),

    each p(x_i | φ_i) as ``channel_model`` says. ``nll(x)`` (unconditional) or ``nll(x, y)``
    (``n_classes`` > 0) = -log p(x [| y]) in nats per image.

    Args:
        image_shape: (C, H, W), default (3, 28, 28).
        n_categories: K, default 4.
        n_filters: F, width of the vertical and horizontal stacks and of the skip sum (128).
        n_layers: gated layers after the first (12: receptive radius 3 + 12 = 15 with the
            default kernels, that of the 12-block PixelCNN).
        kernel_size: k of those layers (3).
        first_kernel: k of the first layer (7).
        channel_model: ``"made"`` (channels autoregressive, R → G → B) or ``"factorised"``.
        feature_dim: size of φ for the MADE, default ``n_filters``.
        made_hidden_sizes: hidden widths of the MADE (128, 128).
        n_classes: classes of the labels it is conditioned on (0: unconditional).
        palette_codes: model each pixel's place in the image's palette (:mod:`ar_models.codes`).
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
        channel_model: ChannelModel = "made",
        feature_dim: int | None = None,
        made_hidden_sizes: tuple[int, ...] = (128, 128),
        n_classes: int = 0,
        palette_codes: bool = False,
        lr: float = 1e-3,
    ) -> None:
        super().__init__(image_shape, n_categories, palette_codes, lr)
        self.save_hyperparameters()
        check(integer=True, minimum=1, n_filters=n_filters)
        check(integer=True, minimum=0, n_classes=n_classes)
        self.n_classes = n_classes
        channels = self.image_shape[0]
        self.channel_head = channel_head(
            channel_model, channels, n_categories, feature_dim or n_filters, made_hidden_sizes
        )
        self.net = GatedNet(
            channels * n_categories,
            self.channel_head.features,
            n_filters,
            n_layers,
            kernel_size,
            first_kernel,
            n_classes,
        )

    def features(self, t_in: Tensor, y: Tensor | None = None) -> Tensor:
        return self.net(t_in, y)

    def cached_stepper(self, n: int, labels: Tensor | None) -> Stepper:
        _, h, w = self.image_shape
        return GatedStepper(self.net, n, h, w, labels)


class GatedStepper:
    """Evaluates a :class:`GatedNet` one pixel at a time in raster order from cached activations
    (after Ramachandran et al. 2017; the cached stepper of :mod:`ar_models.sampling`).

    The vertical stack at row r reads only rows above r, so once those are drawn it is computed
    for the whole row at once (:meth:`start_row`: one conv per layer on the p + 1 cached rows it
    reads). Per pixel (:meth:`step`) only the horizontal stack and the head run, each horizontal
    conv on the cached p + 1 columns of the row. Each activation is computed once: about one
    forward pass in all.

    """

    def __init__(
        self, net: GatedNet, n: int, height: int, width: int, labels: Tensor | None
    ) -> None:
        self.layers = list(net.layers)
        self.n, self.width = n, width
        weight = self.layers[0].vertical.weight
        # vertical-stack inputs, padded by p above, left and right: [n, C_l, H + p, W + 2p]
        self.columns = [
            weight.new_zeros(n, layer.vertical.in_channels, height + layer.p, width + 2 * layer.p)
            for layer in self.layers
        ]
        # horizontal-stack inputs of the layers after the first (the first reads the network
        # input, columns[0]): the current row, padded by p on the left, [n, F, W + p]
        self.rows = [None] + [
            weight.new_zeros(n, layer.horizontal.in_channels, width + layer.p)
            for layer in self.layers[1:]
        ]
        self.kernels = [layer.horizontal.weight.flatten(1) for layer in self.layers]
        self.outs = [layer.out.weight[:, :, 0, 0] for layer in self.layers]
        labels = None if labels is None else labels.long()
        # per layer [n, 2F]: the horizontal conv's bias plus the label embedding
        self.h_bias = [
            layer.horizontal.bias.expand(n, -1)
            + (0 if layer.label_h is None else layer.label_h(labels))
            for layer in self.layers
        ]
        self.v_bias = [
            None if layer.label_v is None else layer.label_v(labels)[:, :, None, None]
            for layer in self.layers
        ]
        self.links: list[Tensor] = []  # per layer, of the current row: [n, 2F, W]
        self.head = [
            (module.weight[:, :, 0, 0], module.bias) if isinstance(module, nn.Conv2d) else None
            for module in net.head
        ]

    def write_input(self, row: int, col: int, value: Tensor) -> None:
        """Record the network input ``[n, C_in]`` of a pixel once it has been drawn."""
        p = self.layers[0].p
        self.columns[0][:, :, row + p, col + p] = value

    def start_row(self, row: int) -> None:
        """The vertical stack of the whole row ``row``; every row above must be written."""
        self.links = []
        for i, layer in enumerate(self.layers):
            window = self.columns[i][:, :, row : row + layer.vertical.kernel_size[0]]
            a_v = F.conv2d(window, layer.vertical.weight, layer.vertical.bias)  # [n, 2F, 1, W]
            link = F.conv2d(a_v, layer.link.weight)[:, :, 0] + self.h_bias[i][:, :, None]
            self.links.append(link)
            if layer.last:
                continue
            if self.v_bias[i] is not None:
                a_v = a_v + self.v_bias[i]
            q = self.layers[i + 1].p
            self.columns[i + 1][:, :, row + q, q : q + self.width] = gate(a_v)[:, :, 0]

    def step(self, row: int, col: int) -> Tensor:
        """The network's output ``[n, C_out]`` at (row, col); the pixels before it in its row must
        be written and :meth:`start_row` called for the row."""
        skip = None
        for i, layer in enumerate(self.layers):
            p = layer.p
            if layer.first:  # network input, columns col-p..col-1
                window = self.columns[0][:, :, row + p, col : col + p]
            else:  # h_{l-1}, columns col-p..col
                window = self.rows[i][:, :, col : col + p + 1]
            a_h = F.linear(window.reshape(self.n, -1), self.kernels[i]) + self.links[i][:, :, col]
            out = F.linear(gate(a_h), self.outs[i], layer.out.bias)
            if layer.last:
                s = out
            else:
                f = layer.n_filters
                h = out[:, :f] if layer.first else out[:, :f] + self.rows[i][:, :, col + p]
                s = out[:, f:]
                self.rows[i + 1][:, :, col + self.layers[i + 1].p] = h
            skip = s if skip is None else skip + s
        h = skip
        for linear in self.head:
            h = F.relu(h) if linear is None else F.linear(h, *linear)
        return h
