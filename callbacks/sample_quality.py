"""Sample quality during training and at test time: how many samples are recognisably digits.

:class:`SampleQualityMonitor` draws ``n_samples`` seeded samples (``model.sample``, the hooks of
:class:`callbacks.hooks.ImageSampler`) and measures
them with :class:`metrics.SampleQuality` against the data module's test images: the fraction
recognised as digits, the entropy of the recognised labels (bits) and the Fréchet distance of the
digit classifier's features. It runs only where the data module says its images are MNIST-like
digits (``digit_domain == "mnist"``: coloured MNIST, the SVHN stand-in).

* every ``every_n_epochs`` training epochs and when fitting ends: logged to every logger as
  ``quality/recognised``, ``quality/label_entropy``, ``quality/frechet`` at the global step, and
  drawn as ``figures/<name>.png`` (recognised fraction and label entropy against training step);
* in a test run (``train.py`` tests the best checkpoint): logged as ``test/recognised``,
  ``test/label_entropy``, ``test/frechet``, which ``train.py`` writes into ``results.json``.

Under DDP each process draws its share of the samples (seed + rank) and reads its share of the
test images; the metric's states are gathered before the values are computed, so every process
logs the same numbers. Nothing is drawn in a ``fast_dev_run``.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from matplotlib.figure import Figure
from pytorch_lightning.utilities import rank_zero_info
from torch import Tensor

from ar_models.errors import check
from callbacks.figures import save_figure, seeded_evaluation
from callbacks.hooks import ImageSampler, require_hooks
from metrics import SampleQuality
from metrics.digits import readable

QUANTITIES = ("recognised", "label_entropy", "frechet")


def images_of(batch: Tensor | tuple | list) -> Tensor:
    """``x`` of a batch that is ``x`` or ``(x, y)``."""
    return batch[0] if isinstance(batch, (tuple, list)) else batch


def test_images(datamodule: pl.LightningDataModule) -> Tensor:
    """The images of the data module's test loader (this process's share under DDP), on the CPU."""
    try:
        loader = datamodule.test_dataloader()
    except RuntimeError:  # not set up for testing yet
        datamodule.setup("test")
        loader = datamodule.test_dataloader()
    return torch.cat([images_of(batch).cpu() for batch in loader])


def share(n: int, rank: int, world: int) -> int:
    """How many of ``n`` items process ``rank`` of ``world`` takes (the first ``n mod world``
    processes take one more)."""
    return n // world + int(rank < n % world)


class SampleQualityMonitor(pl.Callback):
    """Measures sample quality with :class:`metrics.SampleQuality` (module docstring).

    Args:
        every_n_epochs: measure after every this many training epochs (0: only when fitting ends
            and at test time).
        n_samples: samples per measurement (over all processes).
        seed: seed of the samples' random numbers (process r uses seed + r; the global RNG state is
            restored after).
        sample_kwargs: extra keyword arguments of ``model.sample`` (e.g. ``{"decoder_noise":
            False}`` for a VAE's decoder means).
        name: figure name.
    """

    def __init__(
        self,
        every_n_epochs: int = 1,
        n_samples: int = 400,
        seed: int = 0,
        sample_kwargs: dict[str, Any] | None = None,
        name: str = "sample_quality",
    ) -> None:
        check(integer=True, minimum=0, every_n_epochs=every_n_epochs)
        check(integer=True, minimum=2, n_samples=n_samples)
        self.every_n_epochs = every_n_epochs
        self.n_samples = n_samples
        self.seed = seed
        self.sample_kwargs = dict(sample_kwargs or {})
        self.name = name
        self.history: list[dict[str, float]] = []
        self._reference: Tensor | None = None
        self._announced = False

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        require_hooks(self, pl_module, ImageSampler, tuple(self.sample_kwargs))

    # ------------------------------------------------------------------ state (resumed runs)
    def state_dict(self) -> dict[str, Any]:
        return {"history": list(self.history)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict.get("history", []))

    # ------------------------------------------------------------------ when
    def applies(self, trainer: pl.Trainer) -> bool:
        """True where the data are MNIST-like digits; says once why not otherwise."""
        domain = getattr(trainer.datamodule, "digit_domain", None)
        if domain == "mnist":
            return not trainer.fast_dev_run and not trainer.sanity_checking
        if not self._announced:
            rank_zero_info(
                f"{type(self).__name__}: the data module's digit_domain is {domain!r}, not "
                "'mnist'; the digit reader does not apply, sample quality is not measured"
            )
            self._announced = True
        return False

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        last = trainer.max_epochs is not None and epoch >= trainer.max_epochs
        if self.every_n_epochs and epoch % self.every_n_epochs == 0 and not last:
            self.record(trainer, pl_module)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.record(trainer, pl_module)

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.applies(trainer):
            return
        values = self.measure(trainer, pl_module)
        for key in QUANTITIES:
            pl_module.log(f"test/{key}", values[key])
        rank_zero_info(f"{type(self).__name__}: tested weights: {self.describe(values)}")

    # ------------------------------------------------------------------ what
    def describe(self, values: dict[str, float]) -> str:
        return (
            f"{values['recognised']:.1%} of {self.n_samples} samples recognised as digits, "
            f"label entropy {values['label_entropy']:.2f} bits, "
            f"Fréchet distance {values['frechet']:.1f}"
        )

    def measure(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, float]:
        """Draw this process's share of the samples and compute the synced quality values."""
        if self._reference is None:
            self._reference = test_images(trainer.datamodule)
        rank, world = trainer.global_rank, trainer.world_size
        device = pl_module.device
        metric = SampleQuality(int(pl_module.n_categories)).to(device)
        metric.update(self._reference.to(device), real=True)
        with seeded_evaluation(pl_module, self.seed + rank):
            samples = pl_module.sample(share(self.n_samples, rank, world), **self.sample_kwargs)
        if not readable(samples):
            raise ValueError(
                f"{type(self).__name__}: the digit reader reads [B, 3, 28, 28] or [B, 3, 32, 32] "
                f"images, the model samples {tuple(samples.shape)}"
            )
        metric.update(samples)
        return {key: float(value) for key, value in metric.compute().items()}

    def record(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Measure, log at the global step and redraw the figure."""
        if not self.applies(trainer):
            return
        values = self.measure(trainer, pl_module)
        step = trainer.global_step
        metrics = {f"quality/{key}": values[key] for key in QUANTITIES}
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=step)
        self.history = [h for h in self.history if h["step"] != step]
        self.history.append({"step": step, "epoch": trainer.current_epoch, **values})
        rank_zero_info(f"{type(self).__name__} at step {step}: {self.describe(values)}")
        if trainer.is_global_zero:
            self.draw(trainer, pl_module)

    def draw(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        history = sorted(self.history, key=lambda h: h["step"])
        steps = [h["step"] for h in history]
        fig = Figure(figsize=(6, 3.6))
        ax = fig.subplots()
        ax.plot(steps, [h["recognised"] for h in history], "o-", color="C0")
        ax.set_ylim(0, 1)
        ax.set_xlabel("training step")
        ax.set_ylabel("recognised as digits (fraction)", color="C0")
        right = ax.twinx()
        right.plot(steps, [h["label_entropy"] for h in history], "s--", color="C1")
        right.set_ylim(0, 3.5)
        right.axhline(3.3219, color="C1", linewidth=0.5, linestyle=":")
        right.set_ylabel("label entropy (bits; log2 10 dotted)", color="C1")
        ax.set_title(
            f"{type(pl_module).__name__}: sample quality ({self.n_samples} samples each)",
            fontsize=9,
        )
        fig.tight_layout()
        save_figure(trainer, fig, self.name)
