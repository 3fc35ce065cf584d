"""HW1 §1 bar graphs: model probabilities and the frequencies of model samples, beside the data."""

from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import torch
from matplotlib.figure import Figure

from callbacks.figures import evaluating, model_name, save_figure, should_draw
from callbacks.hooks import Density, require_hooks


class CategoryBars(pl.Callback):
    """Bar graphs of the model's probabilities and of its samples' frequencies, over the data's.

    Two bar graphs over the categories {1..K} (the handout's labels), same axes:
    the model's probabilities p(x) = exp(-nll(x)), and the empirical frequencies of ``n_samples``
    samples of ``model.sample``; both with the training data's own frequencies drawn over them.

    Needs a model over ``LongTensor[B]`` categories (:class:`callbacks.hooks.Density`) and a
    DataModule with ``n_categories`` and a ``train`` split. Drawn at the end of fit.
    """

    def __init__(self, n_samples: int = 1000, name: str = "category_bars") -> None:
        self.n_samples = n_samples
        self.name = name

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        require_hooks(self, pl_module, Density)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not should_draw(trainer):
            return
        data = trainer.datamodule
        k = int(data.n_categories)
        with evaluating(pl_module):
            states = torch.arange(k, device=pl_module.device)
            probs = torch.exp(-pl_module.nll(states)).cpu().numpy()
            samples = pl_module.sample(self.n_samples).cpu().numpy()
        sample_freq = np.bincount(samples, minlength=k) / len(samples)
        data_freq = np.bincount(data.train.x.numpy(), minlength=k) / len(data.train)
        self.draw(trainer, probs, sample_freq, data_freq)

    def draw(
        self, trainer: pl.Trainer, probs: np.ndarray, sample_freq: np.ndarray, data_freq: np.ndarray
    ) -> None:
        labels = np.arange(1, len(probs) + 1)
        fig = Figure(figsize=(13, 4.6), layout="constrained")
        axes = fig.subplots(1, 2, sharey=True)
        fig.suptitle(
            f"{model_name(trainer)}: the learned distribution over {len(probs)} categories"
        )
        panels = [
            (axes[0], probs, "model probabilities p(x)"),
            (axes[1], sample_freq, f"frequencies of {self.n_samples} model samples"),
        ]
        for ax, heights, title in panels:
            ax.bar(labels, heights, width=1.0, color="C0", alpha=0.7, label=title)
            ax.step(labels, data_freq, where="mid", color="C3", lw=1.2, label="training data")
            ax.set_xlabel("x")
            ax.set_title(title)
            ax.legend()
        axes[0].set_ylabel("probability")
        save_figure(trainer, fig, self.name)
