"""HW1 §2 pictures: a 2-D histogram of model samples beside the learned and the true density."""

from __future__ import annotations

import math

import numpy as np
import pytorch_lightning as pl
import torch
from matplotlib.figure import Figure

from ar_models.errors import check
from callbacks.figures import FitAndTestEndFigure, evaluating, model_name, save_figure, should_draw
from callbacks.hooks import Density, require_hooks


@torch.no_grad()
def model_density(
    model: pl.LightningModule, n_categories: int, batch_size: int = 10000
) -> np.ndarray:
    """The learned p(x1, x2) = exp(-nll(x)) on every state, ``[K, K]`` (x1 = row, x2 = column)."""
    k = n_categories
    states = torch.cartesian_prod(torch.arange(k), torch.arange(k)).to(model.device)
    nll = torch.cat([model.nll(states[i : i + batch_size]) for i in range(0, k * k, batch_size)])
    return torch.exp(-nll.double()).view(k, k).cpu().numpy()


def kl_bits_per_dim(p: np.ndarray, q: np.ndarray) -> float:
    """KL(p ‖ q) = Σ p log2(p / q), over the two dimensions (bits / 2); 0 log 0 = 0."""
    mask = p > 0
    if (q[mask] <= 0).any():
        return math.inf
    return float((p[mask] * np.log2(p[mask] / q[mask])).sum() / 2)


class Density2D(FitAndTestEndFigure):
    """The learned density of pairs beside a histogram of samples and the true density.

    Three images over the K×K states (x1 = row, x2 = column), one grey scale (the top 0.1%
    of the learned and reference values saturate):

    * a 2-D histogram (K bins per side) of ``n_samples`` draws of ``model.sample``, as frequencies;
    * the learned density exp(-nll(x)) on all K² states;
    * the true density (``datamodule.distribution``), or where the DataModule has none, the
      frequencies of the training data.

    With the true density p, the title gives its entropy H(p) and the model's (q's) exact expected
    NLL, the cross-entropy H(p, q) = H(p) + KL(p ‖ q), in bits/dim. Needs a model over
    ``LongTensor[B, 2]`` (:class:`callbacks.hooks.Density`) and a DataModule with ``n_categories``.
    Drawn at the end of fit, and every ``every_n_epochs`` validation epochs when that is > 0 (as
    ``<name>_step<k>.png``); redrawn after a test run, so that ``<name>.png`` shows the weights
    whose test bits/dim are reported.

    Args:
        n_samples: number of model samples in the histogram.
        every_n_epochs: also draw after every n-th validation epoch (0: only at the end of fit).
        name: figure name (``figures/<name>.png``).
    """

    def __init__(
        self, n_samples: int = 100000, every_n_epochs: int = 0, name: str = "density_2d"
    ) -> None:
        check(integer=True, minimum=1, n_samples=n_samples)
        check(integer=True, minimum=0, every_n_epochs=every_n_epochs)
        self.n_samples = n_samples
        self.every_n_epochs = every_n_epochs
        self.name = name

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        require_hooks(self, pl_module, Density)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.every_n_epochs and (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self.draw(trainer, pl_module, step=trainer.global_step)

    def draw(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, step: int | None = None
    ) -> None:
        if not should_draw(trainer):
            return
        data = trainer.datamodule
        k = int(data.n_categories)
        with evaluating(pl_module):
            learned = model_density(pl_module, k)
            samples = pl_module.sample(self.n_samples).cpu().numpy()
        sample_freq = np.bincount(samples[:, 0] * k + samples[:, 1], minlength=k * k).reshape(k, k)
        sample_freq = sample_freq / len(samples)
        truth = getattr(data, "distribution", None)
        if truth is not None:
            reference, ref_title = np.asarray(truth, dtype=np.float64), "true density p(x1, x2)"
        else:
            x = data.train.x.numpy()
            reference = np.bincount(x[:, 0] * k + x[:, 1], minlength=k * k).reshape(k, k) / len(x)
            ref_title = f"training data ({len(x)} draws)"
        title = f"learned density: total probability {learned.sum():.6f}"
        if truth is not None:
            entropy = float(getattr(data, "entropy_bpd", np.nan))
            kl = kl_bits_per_dim(reference, learned)
            title = (
                f"entropy H(p) = {entropy:.4f} bits/dim;  exact expected NLL H(p, q) = "
                f"{entropy + kl:.4f} bits/dim (KL {kl:.4f});  learned Σ q = {learned.sum():.6f}"
            )
        self.plot(trainer, [sample_freq, learned, reference], ref_title, title, step)

    def plot(
        self,
        trainer: pl.Trainer,
        images: list[np.ndarray],
        ref_title: str,
        suptitle: str,
        step: int | None,
    ) -> None:
        titles = [
            f"histogram of {self.n_samples} model samples",
            "learned density exp(-nll(x))",
            ref_title,
        ]
        # one scale for all three; the brightest 0.1% of the learned and reference cells saturate
        vmax = float(np.quantile(np.concatenate([images[1].ravel(), images[2].ravel()]), 0.999))
        fig = Figure(figsize=(15, 5.3), layout="constrained")
        axes = fig.subplots(1, 3, sharey=True)
        for ax, image, title in zip(axes, images, titles, strict=True):
            shown = ax.imshow(image, cmap="gray", vmin=0.0, vmax=vmax, interpolation="nearest")
            ax.set_title(title)
            ax.set_xlabel("x2 (column)")
        axes[0].set_ylabel("x1 (row)")
        fig.colorbar(shown, ax=list(axes), shrink=0.9, label="probability (one scale)")
        fig.suptitle(f"{model_name(trainer)}: {suptitle}")
        save_figure(trainer, fig, self.name, step)
