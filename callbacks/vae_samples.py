"""VAE samples on 2-D data: the full generative path beside the decoder means, over the data.

Needs a model with ``sample(n, decoder_noise: bool)`` (:class:`callbacks.hooks.NoisySampler`):
z ~ p(z), then x ~ p(x|z) (``decoder_noise=True``) or x = μ(z), the decoder mean (``False``); e.g.
:class:`vae_models.vae2d.VAE2D`.
"""

from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
from matplotlib.figure import Figure

from ar_models.errors import check
from callbacks.figures import FitAndTestEndFigure, evaluating, model_name, save_figure, should_draw
from callbacks.hooks import NoisySampler, require_hooks
from callbacks.latent_scatter import training_points


class VAESamples(FitAndTestEndFigure):
    """Samples of a 2-D VAE with and without decoder noise, over the training data.

    One figure of two panels with shared axes, training data in grey under both:

    * ``n_samples`` draws of the full generative path, z ~ p(z), x ~ p(x|z);
    * the decoder means x = μ(z) of ``n_samples`` fresh z ~ p(z) (no decoder noise).

    If the second panel collapses to a point, the decoder ignores z (the latent code is unused)
    and all the spread comes from the decoder noise. Drawn at the end of fit and after testing
    (the tested checkpoint). Figure: ``figures/<name>.png``.

    Args:
        n_samples: samples per panel.
        n_data: training points drawn in grey.
        name: figure name.
    """

    def __init__(
        self, n_samples: int = 2000, n_data: int = 5000, name: str = "vae_samples"
    ) -> None:
        check(integer=True, minimum=1, n_samples=n_samples)
        check(integer=True, minimum=0, n_data=n_data)
        self.n_samples = n_samples
        self.n_data = n_data
        self.name = name

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        require_hooks(self, pl_module, NoisySampler)

    def draw(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not should_draw(trainer):
            return
        with evaluating(pl_module):
            noisy = pl_module.sample(self.n_samples, decoder_noise=True).cpu().numpy()
            means = pl_module.sample(self.n_samples, decoder_noise=False).cpu().numpy()
        points = training_points(trainer, self.n_data) if self.n_data else None
        data = None if points is None else points[0].numpy()
        self.plot(trainer, noisy, means, data)

    def plot(
        self, trainer: pl.Trainer, noisy: np.ndarray, means: np.ndarray, data: np.ndarray | None
    ) -> None:
        fig = Figure(figsize=(12, 5.8), layout="constrained")
        axes = fig.subplots(1, 2, sharex=True, sharey=True)
        fig.suptitle(f"{model_name(trainer)}: {len(noisy)} samples of each kind")
        panels = [
            (axes[0], noisy, "C0", "full path: z ~ p(z), x ~ p(x|z)"),
            (axes[1], means, "C3", "no decoder noise: z ~ p(z), x = μ(z)"),
        ]
        for ax, pts, color, title in panels:
            if data is not None:
                ax.scatter(data[:, 0], data[:, 1], s=2, color="0.75", label="training data")
            ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.6, color=color, label="model samples")
            ax.set_title(title)
            ax.set_xlabel("x0")
            ax.set_aspect("equal", adjustable="box")
            ax.legend(markerscale=4, fontsize=8, loc="upper left")
        axes[0].set_ylabel("x1")
        save_figure(trainer, fig, self.name)
