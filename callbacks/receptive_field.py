"""The receptive field of one conditional of an image model, measured by gradients at random
initialisation (HW1 §3): which input pixels can the conditional p(x_{r,c,ch} | ...) see?

Model hooks used (:class:`callbacks.hooks.MaskedImageModel`, see ``ar_models.pixelcnn``):
``image_shape``, ``n_categories``, ``embed(x)``, ``conditional_logits(x, x_in[, y])`` (``y`` for
class-conditional models, ``n_classes`` > 0) and, for drawing the nominal box, ``receptive_radius``.
A fresh copy of the model is built from ``model.hparams`` (so the model must call
``save_hyperparameters()``).
"""

from __future__ import annotations

import inspect

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.patches import Patch, Rectangle

from callbacks.figures import model_name, save_figure, should_draw
from callbacks.hooks import MaskedImageModel, require_hooks


def fresh_copy(model: pl.LightningModule, seed: int = 0) -> pl.LightningModule:
    """A new model of the same class and hyper-parameters, with parameters randomly initialised
    from ``seed`` (on the CPU, in eval mode; the global RNG state is restored after)."""
    cls = type(model)
    accepted = inspect.signature(cls.__init__).parameters
    # LightningCLI adds entries such as ``_class_path`` to hparams; pass the constructor's only.
    kwargs = {k: v for k, v in model.hparams.items() if k in accepted}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls(**kwargs).eval()


def input_gradient(
    model: pl.LightningModule, target: tuple[int, int, int] = (14, 14, 0), seed: int = 0
) -> np.ndarray:
    """``|∂ log p(x_t | ...) / ∂ x_in|`` maxed over channels, ``[H, W]``, for the conditional of
    pixel ``target = (row, col, channel)`` of a random image ``x`` (uniform values, seeded), with
    ``x_in = embed(x)`` the network input. Non-zero exactly where the conditional reads the input
    (up to gradients that vanish by chance)."""
    row, col, channel = target
    c, h, w = model.image_shape
    generator = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    x = torch.randint(0, model.n_categories, (1, c, h, w), generator=generator).to(device)
    x_in = model.embed(x).detach().requires_grad_(True)
    # a class-conditional model is read for label 0 (labels do not change what the network sees)
    kwargs = {"y": torch.zeros(1, dtype=torch.long, device=device)} if model.n_classes else {}
    with torch.enable_grad():
        logits = model.conditional_logits(x, x_in, **kwargs)[0, channel, row, col]
        log_prob = F.log_softmax(logits, dim=-1)[x[0, channel, row, col]]
        (grad,) = torch.autograd.grad(log_prob, x_in)
    return grad.abs().amax(dim=1)[0].cpu().numpy()


class ReceptiveField(pl.Callback):
    """Which input pixels one conditional of the model reads, at random initialisation.

    At the start of fit, draws ``figures/<name>.png``: the input gradient of the conditional at
    ``target = (row, col, channel)`` for a freshly initialised copy of the model (left, magnitude
    relative to its maximum) and where it is non-zero (right), with the target pixel marked and the
    nominal receptive field (rows r-R..r, columns c-R..c+R) outlined. For a masked-conv PixelCNN the
    right panel shows the blind spot: pixels above and to the right of the target that the stacked
    3×3 masks never reach. The gradient is kept as ``self.gradient``.

    Args:
        target: (row, col, channel) of the conditional, (14, 14, 0) by default.
        seed: seed of the fresh parameters and of the random input image.
        name: figure name.
    """

    def __init__(
        self,
        target: tuple[int, int, int] = (14, 14, 0),
        seed: int = 0,
        name: str = "receptive_field",
    ) -> None:
        self.target = tuple(int(t) for t in target)
        self.seed = seed
        self.name = name
        self.gradient: np.ndarray | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        require_hooks(self, pl_module, MaskedImageModel)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not should_draw(trainer):
            return
        self.gradient = input_gradient(fresh_copy(pl_module, self.seed), self.target, self.seed)
        self.draw(trainer, self.gradient, pl_module.receptive_radius)

    def draw(self, trainer: pl.Trainer, gradient: np.ndarray, radius: int | None) -> None:
        """Left: the gradient's magnitude, with a colour bar; right: where it is non-zero, with a
        key to its shades and outlines."""
        row, col, channel = self.target
        fig = Figure(figsize=(10, 5.4), layout="constrained")
        axes = fig.subplots(1, 2)
        peak = gradient.max() if gradient.max() > 0 else 1.0
        shown = draw_panel(
            axes[0], gradient / peak, self.target, "|∂ log p / ∂x| (max over channels) / max"
        )
        fig.colorbar(shown, ax=axes[0], shrink=0.8, label=MAGNITUDE_LABEL)
        draw_panel(axes[1], (gradient > 0).astype(float), self.target, "non-zero gradient", radius)
        add_key(axes[1])
        fig.suptitle(
            f"{model_name(trainer)}: receptive field of p(x[{row}, {col}, {channel}] | ...) at "
            "random initialisation",
            fontsize=10,
        )
        save_figure(trainer, fig, self.name)


#: the colour bar of the gradient's magnitude
MAGNITUDE_LABEL = "relative magnitude (black: 0, not read)"
#: what the two shades of a panel of where the gradient is non-zero mean
SHADES = {
    "white": "read: non-zero gradient",
    "black": "not read: zero gradient (later pixels, blind spot)",
}


def add_key(ax: Axes) -> None:
    """A legend under ``ax``: what its white and black pixels mean (:data:`SHADES`), then its
    outlines (the target pixel, the nominal receptive field)."""
    shades = [Patch(facecolor=c, edgecolor="0.5", label=text) for c, text in SHADES.items()]
    outlines, _ = ax.get_legend_handles_labels()
    ax.legend(
        handles=[*shades, *outlines],
        loc="upper center",
        bbox_to_anchor=(0.5, -0.02),
        fontsize=8,
        frameon=False,
    )


def nominal_field(shape: tuple[int, int], target: tuple[int, int], radius: int) -> np.ndarray:
    """The pixels before ``target`` in raster order within its nominal receptive field: rows
    r-R..r-1 with columns c-R..c+R, and columns c-R..c-1 of row r (clipped to the image)."""
    (h, w), (row, col) = shape, target
    box = np.zeros((h, w), bool)
    box[max(row - radius, 0) : row, max(col - radius, 0) : col + radius + 1] = True
    box[row, max(col - radius, 0) : col] = True
    return box


def draw_panel(
    ax: Axes,
    image: np.ndarray,
    target: tuple[int, ...],
    title: str,
    radius: int | None = None,
) -> AxesImage:
    """``image`` in [0, 1] grey with the target pixel (red) and, where ``radius`` is given, the
    nominal receptive field (rows r-R..r, columns c-R..c+R, dashed orange) outlined; returns the
    image drawn."""
    row, col = target[:2]
    shown = ax.imshow(image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.add_patch(
        Rectangle((col - 0.5, row - 0.5), 1, 1, fill=False, ec="red", lw=1.5, label="target")
    )
    if radius is not None:
        ax.add_patch(
            Rectangle(
                (col - radius - 0.5, row - radius - 0.5),
                2 * radius + 1,
                radius + 1,
                fill=False,
                ec="tab:orange",
                ls="--",
                lw=1.2,
                label=f"nominal receptive field (R = {radius})",
            )
        )
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    return shown


def comparison_figure(
    models: dict[str, pl.LightningModule], target: tuple[int, int, int] = (14, 14, 0), seed: int = 0
) -> Figure:
    """Side by side, for each named model: where the conditional at ``target`` has a non-zero
    input gradient at random initialisation (a fresh copy, ``seed``), with the nominal receptive
    field outlined and, in the title, how many of the pixels before the target in that field it
    reads (the others are its blind spot)."""
    fig = Figure(figsize=(4.3 * len(models), 4.9))
    axes = np.atleast_1d(fig.subplots(1, len(models)))
    for ax, (name, model) in zip(axes, models.items(), strict=True):
        support = input_gradient(fresh_copy(model, seed), target, seed) > 0
        radius = model.receptive_radius
        field = nominal_field(support.shape, target[:2], radius)
        seen = int((support & field).sum())
        title = f"{name}\nreads {seen} of the {int(field.sum())} earlier pixels in its field"
        draw_panel(ax, support.astype(float), target, title, radius)
    add_key(axes[0])
    row, col, channel = target
    fig.suptitle(
        f"Non-zero gradient of log p(x[{row}, {col}, {channel}] | ...) at random initialisation",
        fontsize=10,
    )
    return fig
