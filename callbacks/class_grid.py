"""A grid of class-conditional samples, one row per class, with how often each row is read as its
class.

Model hooks used (:class:`callbacks.hooks.ClassConditional`): ``n_classes`` (> 0), ``n_categories``
and ``sample(n, y=labels)`` (images ``LongTensor[n, C, H, W]`` in {0..K-1} of the asked classes).
Where the data are MNIST-like digits (the data module's ``digit_domain`` is ``"mnist"``), row c is
read with :class:`metrics.sample_quality.ClassAgreement`: the fraction of its samples recognised as
digit c.
"""

from __future__ import annotations

import time

import pytorch_lightning as pl
import torch
from matplotlib.figure import Figure
from pytorch_lightning.utilities import rank_zero_info
from torch import Tensor

from ar_models.errors import ModelConfigError, check
from callbacks.figures import save_figure, seeded_evaluation, should_draw
from callbacks.hooks import ClassConditional, require_hooks
from callbacks.sample_grid import image_grid
from metrics.digits import readable
from metrics.sample_quality import ClassAgreement


def class_agreement(images: Tensor, labels: Tensor, n_levels: int, n_classes: int) -> Tensor:
    """Per class c, the fraction of ``images`` asked to show c that the digit reader recognises
    as c, ``[n_classes]`` (computed here alone: no synchronisation across processes)."""
    metric = ClassAgreement(n_levels, n_classes, sync_on_compute=False).to(images.device)
    metric.update(images, labels)
    return metric.compute().cpu()


class ClassConditionalGrid(pl.Callback):
    """A grid of samples of a class-conditional model, one row per class.

    Draws ``n_per_class`` samples of every class of a class-conditional model, row c asked for
    class c, as ``figures/<name>.png``: every ``every_n_epochs`` training epochs (as
    ``<name>_step<global step>.png``), at the end of fit, and after testing (the tested weights).
    The draw is seeded (``seed``), so grids at different epochs start from the same random
    numbers; nothing is drawn in a ``fast_dev_run``.

    On digit data (module docstring) each row's agreement is written beside it and logged: as
    ``<name>/agreement_<c>`` and their mean ``<name>/agreement`` to the trainer's loggers during
    fit, and as ``test/<name>/agreement[_<c>]`` with the test metrics. The last values are kept
    in ``self.agreement`` (``Tensor[n_classes]``, None elsewhere).

    Args:
        every_n_epochs: draw after every this many training epochs (0 for only at the end).
        n_per_class: samples per class (a row).
        seed: seed of the sampler's random numbers (the global RNG state is restored after).
        name: figure name.
    """

    def __init__(
        self,
        every_n_epochs: int = 0,
        n_per_class: int = 10,
        seed: int = 0,
        name: str = "class_samples",
    ) -> None:
        check(integer=True, minimum=0, every_n_epochs=every_n_epochs)
        check(integer=True, minimum=1, n_per_class=n_per_class)
        self.every_n_epochs = every_n_epochs
        self.n_per_class = n_per_class
        self.seed = seed
        self.name = name
        self.agreement: Tensor | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        require_hooks(self, pl_module, ClassConditional)
        if not pl_module.n_classes:
            raise ModelConfigError(
                f"{type(self).__name__} needs a class-conditional model (n_classes > 0), got "
                f"{type(pl_module).__name__} with n_classes={pl_module.n_classes}"
            )

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        last = trainer.max_epochs is not None and epoch >= trainer.max_epochs
        if self.every_n_epochs and epoch % self.every_n_epochs == 0 and not last:
            self.draw(trainer, pl_module, step=trainer.global_step, title=f"epoch {epoch}")

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.draw(trainer, pl_module, title=f"end of training (epoch {trainer.current_epoch})")

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        agreement = self.draw(trainer, pl_module, title="tested weights")
        if agreement is None:
            return
        for key, value in self.agreement_metrics(agreement, prefix="test/").items():
            pl_module.log(key, value, rank_zero_only=True)

    def labels(self, n_classes: int, device: torch.device) -> Tensor:
        """``LongTensor[n_classes · n_per_class]``: 0 (n_per_class times), 1, ..."""
        return torch.arange(n_classes, device=device).repeat_interleave(self.n_per_class)

    def samples(self, pl_module: pl.LightningModule) -> tuple[Tensor, Tensor]:
        """Seeded samples and the labels they were asked for, in eval mode without gradients."""
        labels = self.labels(pl_module.n_classes, pl_module.device)
        with seeded_evaluation(pl_module, self.seed):
            return pl_module.sample(len(labels), y=labels), labels

    def agreement_metrics(self, agreement: Tensor, prefix: str = "") -> dict[str, float]:
        metrics = {f"{prefix}{self.name}/agreement": float(agreement.nanmean())}
        metrics.update(
            {f"{prefix}{self.name}/agreement_{c}": float(a) for c, a in enumerate(agreement)}
        )
        return metrics

    def draw(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        step: int | None = None,
        title: str = "",
    ) -> Tensor | None:
        """Sample, read (on digit data), draw and log; returns the agreement or None."""
        if not should_draw(trainer) or trainer.fast_dev_run:  # a smoke test: skip the slow part
            return None
        start = time.perf_counter()
        images, labels = self.samples(pl_module)
        seconds = time.perf_counter() - start
        n_classes, n_levels = pl_module.n_classes, int(pl_module.n_categories)
        rank_zero_info(f"{type(self).__name__}: {len(images)} samples in {seconds:.1f} s")
        digits = getattr(trainer.datamodule, "digit_domain", None) == "mnist" and readable(images)
        agreement = class_agreement(images, labels, n_levels, n_classes) if digits else None
        self.agreement = agreement
        grid = image_grid(images.cpu().numpy(), n_classes, n_levels - 1)
        fig = Figure(figsize=(grid.shape[1] / 40 + 0.9, grid.shape[0] / 40 + 0.4))
        ax = fig.subplots()
        ax.imshow(grid, interpolation="nearest")
        ax.set_xticks([])
        side = images.shape[-2] + 1
        ax.set_yticks(
            [1 + side * c + side // 2 for c in range(n_classes)],
            [f"{c}" if agreement is None else f"{c}: {agreement[c]:.0%}" for c in range(n_classes)],
            fontsize=7,
        )
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
        caption = (
            f"{type(pl_module).__name__}: {len(images)} samples, row c asked for class c, {title}"
        )
        if agreement is not None:
            caption += f"; read as their class: {float(agreement.nanmean()):.0%} on average"
            rank_zero_info(
                f"{type(self).__name__}: agreement per class "
                + " ".join(f"{c}:{a:.2f}" for c, a in enumerate(agreement.tolist()))
                + f", mean {float(agreement.nanmean()):.3f}"
            )
            if step is not None or not trainer.testing:
                for logger in trainer.loggers:
                    logger.log_metrics(self.agreement_metrics(agreement), step=trainer.global_step)
        ax.set_title(caption, fontsize=8)
        save_figure(trainer, fig, self.name, step=step)
        return agreement
