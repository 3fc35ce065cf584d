"""VAE reconstructions: test images beside their reconstructions from the posterior mean, and the
fraction of test images whose reconstruction the digit reader reads as the input's label.

Needs a model with the hooks of :class:`callbacks.hooks.LatentImageModel`:
``posterior_mean(x) -> z`` (the mean of q(z|x)) and ``decode_to_pixels(z) -> images`` (images like
a batch ``x``: the decoder mean, or for an autoregressive decoder one draw x ~ P(x|z), named by the
model's ``decoded_label``) and an ``n_categories`` attribute, e.g.
:class:`vae_models.conv_vae.ConvVAE` and :class:`vae_models.pixel_vae.PixelVAE`.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from matplotlib.figure import Figure
from torch import Tensor

from ar_models.errors import check
from callbacks.figures import (
    FitAndTestEndFigure,
    save_figure,
    seeded_evaluation,
    should_draw,
)
from callbacks.hooks import LatentImageModel, optional_hook, require_hooks
from callbacks.interpolations import first_test_images
from callbacks.sample_grid import image_grid
from metrics.sample_quality import ReconstructionAccuracy

DIGIT_DOMAIN = "mnist"


def reconstruct(pl_module: pl.LightningModule, x: Tensor, seed: int) -> Tensor:
    """``decode_to_pixels(posterior_mean(x))`` in eval mode without gradients, with the global
    random numbers seeded by ``seed`` for decoders that draw (the RNG state is restored after)."""
    x = x.to(pl_module.device)
    with seeded_evaluation(pl_module, seed):
        return pl_module.decode_to_pixels(pl_module.posterior_mean(x)).to(x.dtype)


def reads_digits(trainer: pl.Trainer) -> bool:
    """True when the trainer's DataModule says its images are MNIST-like digits."""
    return getattr(trainer.datamodule, "digit_domain", None) == DIGIT_DOMAIN


class Reconstructions(FitAndTestEndFigure):
    """Test images beside their reconstructions through the posterior mean.

    Figure ``figures/<name>.png`` (at the end of fit and after testing): the first ``n_images``
    test images, each followed by its reconstruction ``decode_to_pixels(posterior_mean(x))``.

    During testing, where the DataModule's ``digit_domain`` is ``"mnist"`` and the batches carry
    labels, every test image is reconstructed (the first ``max_accuracy_images`` per process, all
    when None) and ``test/recon_accuracy`` is logged: the fraction whose reconstruction the digit
    reader of :mod:`metrics` reads as the input's label (so it lands in ``results.json``).
    Reconstructions that draw (PixelVAE) are seeded by ``seed`` + the batch index.

    Args:
        n_images: test images in the figure.
        n_per_row: (image, reconstruction) pairs per row of the figure.
        max_accuracy_images: cap on the test images the accuracy reads (per process).
        seed: seed of the reconstructions' random numbers.
        name: figure name.
    """

    def __init__(
        self,
        n_images: int = 40,
        n_per_row: int = 10,
        max_accuracy_images: int | None = None,
        seed: int = 0,
        name: str = "reconstructions",
    ) -> None:
        check(integer=True, minimum=1, n_images=n_images, n_per_row=n_per_row)
        if max_accuracy_images is not None:
            check(integer=True, minimum=1, max_accuracy_images=max_accuracy_images)
        self.n_images = n_images
        self.n_per_row = n_per_row
        self.max_accuracy_images = max_accuracy_images
        self.seed = seed
        self.name = name
        self.accuracy: ReconstructionAccuracy | None = None
        self.last_accuracy: float | None = None
        self._seen = 0

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        require_hooks(self, pl_module, LatentImageModel)

    # ------------------------------------------------------------------ accuracy (test loop)
    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.accuracy, self.last_accuracy, self._seen = None, None, 0
        if reads_digits(trainer):
            n_levels = int(pl_module.n_categories)
            self.accuracy = ReconstructionAccuracy(n_levels).to(pl_module.device)

    def on_test_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if self.accuracy is None or not isinstance(batch, (tuple, list)) or len(batch) < 2:
            return
        cap = self.max_accuracy_images
        take = len(batch[0]) if cap is None else min(len(batch[0]), cap - self._seen)
        if take <= 0:
            return
        x, y = batch[0][:take], batch[1][:take]
        self.accuracy.update(reconstruct(pl_module, x, self.seed + batch_idx), y.to(x.device))
        self._seen += take

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.accuracy is None or self._seen == 0:
            return
        value = self.accuracy.compute()
        self.last_accuracy = float(value)
        pl_module.log("test/recon_accuracy", value.to(pl_module.device), on_epoch=True)

    # ------------------------------------------------------------------ figure
    def draw(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not should_draw(trainer):
            return
        x = first_test_images(trainer, self.n_images)
        if x is None or len(x) == 0:
            return
        recon = reconstruct(pl_module, x, self.seed).cpu()
        pairs = torch.stack([x, recon], dim=1).flatten(0, 1).numpy()  # image, reconstruction, ...
        n_rows = -(-len(x) // self.n_per_row)
        max_value = max(int(pl_module.n_categories) - 1, 1)
        grid = image_grid(pairs, n_rows, max_value)
        fig = Figure(figsize=(grid.shape[1] / 40, grid.shape[0] / 40 + 0.5))
        ax = fig.subplots()
        ax.imshow(grid, interpolation="nearest")
        ax.set_axis_off()
        decoded = optional_hook(pl_module, "decoded_label", "decoder mean")
        name = type(pl_module).__name__
        title = f"{name}: test image | reconstruction ({decoded} at z = μ(x)), in pairs"
        if self.last_accuracy is not None and trainer.testing:
            title += f" | recon accuracy {self.last_accuracy:.3f}"
        ax.set_title(title, fontsize=8)
        save_figure(trainer, fig, self.name)
