"""VAE latents: z ~ q(z|x) of training data (coloured by label), and how much each latent is used.

Needs a model with the VAE hooks of :class:`callbacks.hooks.GaussianEncoder`:
``encode(x) -> (μ, logvar)`` of q(z|x) = N(μ, diag exp(logvar)) and ``latent_kl(x) -> [B, L]``
(the analytic KL(q(z_j|x) ‖ N(0, 1)) of each latent dimension, nats), e.g.
:class:`vae_models.vae2d.VAE2D`.
"""

from __future__ import annotations

import math

import numpy as np
import pytorch_lightning as pl
import torch
from matplotlib.figure import Figure
from pytorch_lightning.utilities import rank_zero_info

from ar_models.errors import check
from callbacks.figures import FitAndTestEndFigure, evaluating, model_name, save_figure, should_draw
from callbacks.hooks import GaussianEncoder, require_hooks

LN2 = math.log(2.0)


def training_points(trainer: pl.Trainer, n: int) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """Up to ``n`` training examples ``x`` (and labels ``y`` where the data has them), taken from
    the DataModule's train loader; ``None`` when the trainer has no DataModule."""
    data = trainer.datamodule
    if data is None:
        return None
    xs: list[torch.Tensor] = []
    ys: list[torch.Tensor] = []
    have = 0
    for batch in data.train_dataloader():
        x, y = batch if isinstance(batch, (tuple, list)) else (batch, None)
        xs.append(x[: n - have])
        if y is not None:
            ys.append(y[: n - have])
        have += len(xs[-1])
        if have >= n:
            break
    if not xs:
        return None
    return torch.cat(xs), (torch.cat(ys) if ys else None)


class LatentScatter(FitAndTestEndFigure):
    """The posterior samples of training points in latent space, and the KL per latent dimension.

    Two panels, drawn at the end of fit and after testing (the tested checkpoint):

    * z ~ q(z|x) for ``n_points`` training examples (first two latent dimensions), coloured by the
      label where the data has labels, with the prior's 1σ and 2σ circles;
    * the average KL(q(z_j|x) ‖ N(0, 1)) of each latent dimension j over those examples, in nats
      (a dimension with KL ≈ 0 carries no information about x: q(z_j|x) = p(z_j) for every x).

    The per-dimension KLs are also printed. Figure: ``figures/<name>.png``.

    Args:
        n_points: training examples encoded.
        name: figure name.
    """

    def __init__(self, n_points: int = 5000, name: str = "latent_scatter") -> None:
        check(integer=True, minimum=1, n_points=n_points)
        self.n_points = n_points
        self.name = name

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        require_hooks(self, pl_module, GaussianEncoder)

    def draw(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not should_draw(trainer):
            return
        points = training_points(trainer, self.n_points)
        if points is None:
            return
        x, y = points
        with evaluating(pl_module):
            x = x.to(pl_module.device)
            mu, logvar = pl_module.encode(x)
            z = (mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)).cpu().numpy()
            kl = pl_module.latent_kl(x).mean(0).cpu().numpy()
        rank_zero_info(
            "average KL(q(z_j|x) || p(z_j)) per latent dimension (nats): "
            + ", ".join(f"z{j}: {v:.4f}" for j, v in enumerate(kl))
        )
        self.plot(trainer, z, None if y is None else y.numpy(), kl, int(x.shape[1]))

    def plot(
        self,
        trainer: pl.Trainer,
        z: np.ndarray,
        labels: np.ndarray | None,
        kl: np.ndarray,
        data_dims: int,
    ) -> None:
        fig = Figure(figsize=(12, 5.3), layout="constrained")
        ax, bars = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.3, 1]})
        fig.suptitle(f"{model_name(trainer)}: the latent space")
        z2 = z[:, :2] if z.shape[1] >= 2 else np.c_[z[:, 0], np.zeros(len(z))]
        if labels is None:
            ax.scatter(z2[:, 0], z2[:, 1], s=2, alpha=0.4, color="C0", label="training data")
        else:
            for label in np.unique(labels):
                pts = z2[labels == label]
                ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.4, label=f"label {label}")
        t = np.linspace(0, 2 * np.pi, 200)
        for r, style in ((1, "-"), (2, "--")):
            ax.plot(r * np.cos(t), r * np.sin(t), "k", ls=style, lw=0.8, label=f"prior {r}σ")
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_xlabel("z0")
        ax.set_ylabel("z1")
        ax.set_title(f"z ~ q(z|x) of {len(z)} training points")
        ax.legend(markerscale=4, fontsize=8, loc="upper right")
        dims = np.arange(len(kl))
        bars.bar(dims, kl, color="C2")
        for j, v in zip(dims, kl, strict=True):
            bits = v / (data_dims * LN2)
            bars.annotate(
                f"{v:.3f} nats\n({bits:.3f} bits/dim)", (j, v), ha="center", va="bottom", fontsize=9
            )
        bars.set_xticks(dims, [f"z{j}" for j in dims])
        bars.set_ylabel("average KL(q(z_j|x) ‖ N(0, 1)) (nats)")
        bars.set_ylim(0, max(float(kl.max()) * 1.25, 0.05))
        bars.set_title("latent use: KL per dimension (≈ 0: unused)")
        save_figure(trainer, fig, self.name)
