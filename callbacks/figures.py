"""Shared plumbing of every figure callback: where PNGs go, W&B logging, rank zero, eval mode; and
the picture of a set of samples (:func:`samples_figure`, which ``predict`` saves).

A figure is written to ``<trainer.default_root_dir>/figures/<name>.png`` (``<name>_step<k>.png``
for figures drawn repeatedly) and logged to W&B under ``figures/<name>`` when a ``WandbLogger`` is
attached. Figures are built with ``matplotlib.figure.Figure`` (no pyplot, no GUI backend).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from matplotlib.figure import Figure
from pytorch_lightning.loggers import WandbLogger


def figures_dir(trainer: pl.Trainer) -> Path:
    """The run's figure folder, created on demand."""
    path = Path(trainer.default_root_dir) / "figures"
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_figure(trainer: pl.Trainer, fig: Figure, name: str, step: int | None = None) -> Path:
    """Write ``fig`` as ``figures/<name>[_step<k>].png`` and log it to every attached W&B logger."""
    filename = f"{name}.png" if step is None else f"{name}_step{step}.png"
    path = figures_dir(trainer) / filename
    fig.savefig(path, dpi=100, bbox_inches="tight")
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            logger.log_image(key=f"figures/{name}", images=[str(path)])
    return path


@contextlib.contextmanager
def evaluating(module: torch.nn.Module) -> Iterator[None]:
    """``eval()`` and ``torch.no_grad()`` inside, the module's previous mode restored after."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        module.train(was_training)


@contextlib.contextmanager
def seeded_evaluation(module: pl.LightningModule, seed: int) -> Iterator[None]:
    """:func:`evaluating` with torch's global random numbers seeded by ``seed`` inside (CPU, and
    the module's CUDA device where it has one) and their previous state restored after: figures
    and metrics draw the same samples every time without disturbing training's random stream."""
    device = module.device
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), evaluating(module):
        torch.manual_seed(seed)
        yield


def model_name(trainer: pl.Trainer | None, pl_module: object | None = None) -> str:
    """The class name of the model a figure shows (``pl_module``, else the trainer's), which every
    figure title starts with."""
    module = pl_module if pl_module is not None else getattr(trainer, "lightning_module", None)
    return type(module).__name__ if module is not None else "model"


def should_draw(trainer: pl.Trainer) -> bool:
    """Figures are drawn on global rank zero only, never during the sanity check."""
    return trainer.is_global_zero and not trainer.sanity_checking


class FitAndTestEndFigure(pl.Callback):
    """A figure callback drawn when fitting ends and again after testing.

    After testing, the figure shows the tested weights (``train.py`` tests the best checkpoint).
    Subclasses implement ``draw(trainer, pl_module)``."""

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.draw(trainer, pl_module)

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.draw(trainer, pl_module)

    def draw(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        raise NotImplementedError


def image_grid(images: np.ndarray, n_levels: int, ncols: int, pad: int = 1) -> np.ndarray:
    """Images ``[n, C, H, W]`` (C = 1 or 3) with integer levels ``0..n_levels-1`` tiled row by row
    into one float array ``[rows·(H+pad)-pad, ncols·(W+pad)-pad, C]`` in [0, 1] (level / (n_levels
    - 1)), with grey lines between the tiles."""
    n, c, h, w = images.shape
    rows = math.ceil(n / ncols)
    grid = np.full((rows * (h + pad) - pad, ncols * (w + pad) - pad, c), 0.5)
    for i, image in enumerate(images):
        r, col = divmod(i, ncols)
        top, left = r * (h + pad), col * (w + pad)
        grid[top : top + h, left : left + w] = image.transpose(1, 2, 0) / (n_levels - 1)
    return grid


def samples_figure(
    samples: np.ndarray,
    title: str,
    n_levels: int | None = None,
    labels: np.ndarray | None = None,
    ncols: int | None = None,
) -> Figure | None:
    """A picture of ``n`` model samples, by their shape (None for any other shape):

    * images ``[n, C, H, W]``, C = 1 or 3, integers in 0..n_levels-1: a grid, ``ncols`` per row
      (default ⌈√n⌉); with ``labels`` that repeat every ``ncols`` samples, each column is headed by
      its label;
    * integer pairs ``[n, 2]`` in 0..n_levels-1: the K×K counts (x1 = row, x2 = column);
    * real pairs ``[n, 2]``: a scatter plot;
    * categories ``[n]`` in 0..n_levels-1: the frequency of each category.
    """
    integer = np.issubdtype(samples.dtype, np.integer)
    levels = int(n_levels) if n_levels else (int(samples.max()) + 1 if integer else 0)
    if samples.ndim == 4 and samples.shape[1] in (1, 3) and integer:
        ncols = ncols or math.ceil(math.sqrt(len(samples)))
        grid = image_grid(samples, max(levels, 2), ncols)
        width = 10.0 if ncols > 8 else 1.25 * ncols
        fig = Figure(
            figsize=(width, width * grid.shape[0] / grid.shape[1] + 0.6), layout="constrained"
        )
        ax = fig.subplots()
        ax.imshow(grid[..., 0] if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=1)
        ax.set_yticks([])
        headed = labels is not None and len(labels) >= ncols
        if headed and all(labels[i] == labels[i % ncols] for i in range(len(labels))):
            tile = samples.shape[3] + 1
            ax.set_xticks([tile * j + samples.shape[3] / 2 for j in range(ncols)])
            ax.set_xticklabels([str(int(y)) for y in labels[:ncols]])
            ax.xaxis.tick_top()
            ax.xaxis.set_label_position("top")
            ax.set_xlabel("label")
        else:
            ax.set_xticks([])
    elif samples.ndim == 2 and samples.shape[1] == 2 and integer:
        counts = np.zeros((levels, levels))
        np.add.at(counts, (samples[:, 0], samples[:, 1]), 1)
        fig = Figure(figsize=(5.5, 5), layout="constrained")
        ax = fig.subplots()
        shown = ax.imshow(counts, cmap="viridis", interpolation="nearest")
        fig.colorbar(shown, ax=ax, label="samples")
        ax.set_xlabel("x2")
        ax.set_ylabel("x1")
    elif samples.ndim == 2 and samples.shape[1] == 2:
        fig = Figure(figsize=(5, 5), layout="constrained")
        ax = fig.subplots()
        ax.scatter(samples[:, 0], samples[:, 1], s=4, alpha=0.5)
        ax.set_xlabel("x1")
        ax.set_ylabel("x2")
        ax.set_aspect("equal", adjustable="datalim")
    elif samples.ndim == 1 and integer:
        fig = Figure(figsize=(7, 3.5), layout="constrained")
        ax = fig.subplots()
        ax.bar(np.arange(levels), np.bincount(samples, minlength=levels) / len(samples), width=1)
        ax.set_xlabel("category")
        ax.set_ylabel("frequency among the samples")
    else:
        return None
    fig.suptitle(title, fontsize=10)
    return fig
