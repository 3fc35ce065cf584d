"""Shared plumbing of every figure callback: where PNGs go, W&B logging, rank zero, eval mode.

A figure is written to ``<trainer.default_root_dir>/figures/<name>.png`` (``<name>_step<k>.png``
for figures drawn repeatedly) and logged to W&B under ``figures/<name>`` when a ``WandbLogger`` is
attached. Figures are built with ``matplotlib.figure.Figure`` (no pyplot, no GUI backend).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

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


def should_draw(trainer: pl.Trainer) -> bool:
    """Figures are drawn on global rank zero only, never during the sanity check."""
    return trainer.is_global_zero and not trainer.sanity_checking


class FitAndTestEndFigure(pl.Callback):
    """A figure callback drawn once when fitting ends and again after testing (the tested weights:
    ``train.py`` tests the best checkpoint). Subclasses implement ``draw(trainer, pl_module)``."""

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.draw(trainer, pl_module)

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.draw(trainer, pl_module)

    def draw(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        raise NotImplementedError
