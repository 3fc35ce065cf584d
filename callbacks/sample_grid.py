"""A grid of model samples (images ``[N, C, H, W]`` in {0..K-1}) during and after training."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from matplotlib.figure import Figure
from pytorch_lightning.utilities import rank_zero_info

from ar_models.errors import check
from callbacks.figures import save_figure, seeded_evaluation, should_draw
from callbacks.hooks import ImageSampler, require_hooks
from metrics.digits import digit_reader, readable


def image_grid(images: np.ndarray, n_rows: int, max_value: int, pad: int = 1) -> np.ndarray:
    """Tile ``[N, C, H, W]`` values in {0..max_value} into one uint8 image ``[rows·(H+pad)+pad,
    cols·(W+pad)+pad, 3]`` with values scaled to 0..255 (value · 255 / max_value); C = 1 is drawn
    grey, C = 3 as RGB; the padding is white."""
    n, c, h, w = images.shape
    if c not in (1, 3):
        raise ValueError(f"can only draw 1 or 3 channels, got {c}")
    n_cols = -(-n // n_rows)
    scaled = np.round(images.astype(np.float64) * (255.0 / max_value)).astype(np.uint8)
    scaled = np.repeat(scaled, 3 // c, axis=1).transpose(0, 2, 3, 1)  # [N, H, W, 3]
    grid = np.full((n_rows * (h + pad) + pad, n_cols * (w + pad) + pad, 3), 255, np.uint8)
    for k in range(n):
        r, col = divmod(k, n_cols)
        top, left = pad + r * (h + pad), pad + col * (w + pad)
        grid[top : top + h, left : left + w] = scaled[k]
    return grid


def digit_caption(trainer: pl.Trainer, images: torch.Tensor, n_levels: int) -> str:
    """The share of ``images`` recognised as digits (:mod:`metrics.digits`), as a caption, where
    the data are MNIST-like digits the reader can read; else an empty string."""
    if getattr(trainer.datamodule, "digit_domain", None) != "mnist" or not readable(images):
        return ""
    reading = digit_reader(images.device).read(images, n_levels)
    return f"{reading.recognised.float().mean():.0%} recognised as digits"


class SampleGrid(pl.Callback):
    """A grid of seeded model samples, during and at the end of training.

    Draws ``n_samples`` samples of ``model.sample`` as a ``n_rows``-row grid: every
    ``every_n_epochs`` epochs as ``figures/<name>_step<global step>.png`` (0: never) and at the end
    of fit as ``figures/<name>.png``. The draw is seeded (``seed``), so grids at different epochs
    start from the same random numbers. Values are shown scaled by 255/(K-1), K the model's
    ``n_categories`` (:class:`callbacks.hooks.ImageSampler`). Sampling is the model's own (for a
    PixelCNN: one network pass per pixel), so it can cost as much as a few training epochs; nothing
    is drawn in a ``fast_dev_run``.

    Args:
        every_n_epochs: draw after every this many training epochs (0 for only at the end).
        n_samples: number of samples (100 for the 10×10 grid).
        n_rows: rows of the grid.
        seed: seed of the sampler's random numbers (the global RNG state is restored after).
        name: figure name.
        sample_kwargs: extra keyword arguments of ``model.sample`` (e.g. ``{"decoder_noise":
            False}`` for a VAE's decoder means), named in the figure's title.
    """

    def __init__(
        self,
        every_n_epochs: int = 10,
        n_samples: int = 100,
        n_rows: int = 10,
        seed: int = 0,
        name: str = "samples",
        sample_kwargs: dict[str, Any] | None = None,
    ) -> None:
        check(integer=True, minimum=0, every_n_epochs=every_n_epochs)
        check(integer=True, minimum=1, n_samples=n_samples, n_rows=n_rows)
        self.every_n_epochs = every_n_epochs
        self.n_samples = n_samples
        self.n_rows = n_rows
        self.seed = seed
        self.name = name
        self.sample_kwargs = dict(sample_kwargs or {})

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        require_hooks(self, pl_module, ImageSampler, tuple(self.sample_kwargs))

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        last = trainer.max_epochs is not None and epoch >= trainer.max_epochs
        if self.every_n_epochs and epoch % self.every_n_epochs == 0 and not last:
            title = (
                f"after epoch {trainer.current_epoch}, step {trainer.global_step}"  # as checkpoints
            )
            self.draw(trainer, pl_module, step=trainer.global_step, title=title)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.draw(trainer, pl_module, title=f"end of training, step {trainer.global_step}")

    def samples(self, pl_module: pl.LightningModule) -> torch.Tensor:
        """``n_samples`` seeded samples of the model, in eval mode without gradients."""
        with seeded_evaluation(pl_module, self.seed):
            return pl_module.sample(self.n_samples, **self.sample_kwargs)

    def draw(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        step: int | None = None,
        title: str = "",
    ) -> None:
        if not should_draw(trainer) or trainer.fast_dev_run:  # a smoke test: skip the slow part
            return
        start = time.perf_counter()
        samples = self.samples(pl_module).cpu()
        seconds = time.perf_counter() - start
        rank_zero_info(f"{type(self).__name__}: {len(samples)} samples in {seconds:.1f} s")
        images = samples.numpy()
        n_levels = int(pl_module.n_categories)
        grid = image_grid(images, self.n_rows, max(n_levels - 1, 1))
        fig = Figure(figsize=(grid.shape[1] / 40, grid.shape[0] / 40 + 0.4))
        ax = fig.subplots()
        ax.imshow(grid, interpolation="nearest")
        ax.set_axis_off()
        options = ", ".join(f"{k}={v}" for k, v in self.sample_kwargs.items())
        title = f"{title}, {options}" if options else title
        caption = digit_caption(trainer, samples, n_levels)
        title = f"{title}\n{caption}" if caption else title
        ax.set_title(f"{type(pl_module).__name__}: {len(images)} samples, {title}", fontsize=9)
        save_figure(trainer, fig, self.name, step=step)
