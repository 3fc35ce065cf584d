"""Latent interpolations between pairs of test images, through the posterior means.

Needs a model with the hooks of :class:`callbacks.hooks.LatentImageModel`:
``posterior_mean(x) -> z`` (the mean of q(z|x) for a batch of images) and ``decode_to_pixels(z) ->
images`` (the decoder mean as images like a batch ``x``) and an ``n_categories`` attribute (values
per channel), e.g. :class:`vae_models.conv_vae.ConvVAE`.
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from matplotlib.figure import Figure

from ar_models.errors import check
from callbacks.figures import FitAndTestEndFigure, evaluating, save_figure, should_draw
from callbacks.hooks import LatentImageModel, optional_hook, require_hooks
from callbacks.sample_grid import image_grid


def first_test_images(trainer: pl.Trainer, n: int) -> torch.Tensor | None:
    """The first ``n`` images of the DataModule's test loader (fewer if it has fewer; None without
    a DataModule)."""
    data = trainer.datamodule
    if data is None:
        return None
    xs: list[torch.Tensor] = []
    have = 0
    for batch in data.test_dataloader():
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        xs.append(x[: n - have])
        have += len(xs[-1])
        if have >= n:
            break
    return torch.cat(xs) if xs else None


class Interpolations(FitAndTestEndFigure):
    """Decoded interpolations between the posterior means of pairs of test images.

    One row per pair (a, b) of test images (images 2k and 2k+1 of the test loader): a, then the
    decoder means of z_t = (1 − t) μ_a + t μ_b for ``n_steps`` values of t evenly spaced in [0, 1]
    (μ the posterior means), then b. Drawn at the end of fit and after testing (the tested
    checkpoint) as ``figures/<name>.png``. A model whose ``decode_to_pixels`` is not a mean names
    what it draws in a ``decoded_label`` attribute, used in the title.

    Args:
        n_pairs: image pairs (rows), 5 in the handout.
        n_steps: interpolation points per row, both ends included.
        name: figure name.
    """

    def __init__(self, n_pairs: int = 5, n_steps: int = 10, name: str = "interpolations") -> None:
        check(integer=True, minimum=1, n_pairs=n_pairs)
        check(integer=True, minimum=2, n_steps=n_steps)
        self.n_pairs = n_pairs
        self.n_steps = n_steps
        self.name = name

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        require_hooks(self, pl_module, LatentImageModel)

    def interpolate(self, pl_module: pl.LightningModule, x: torch.Tensor) -> torch.Tensor:
        """Rows ``[n_pairs, n_steps + 2, C, H, W]``: a, the decoded z_t, b, for pairs of ``x``."""
        a, b = x[0::2].to(pl_module.device), x[1::2].to(pl_module.device)
        with evaluating(pl_module):
            mu_a, mu_b = pl_module.posterior_mean(a), pl_module.posterior_mean(b)
            t = torch.linspace(0.0, 1.0, self.n_steps, device=mu_a.device)
            t = t.view(1, -1, *[1] * (mu_a.dim() - 1))
            z = (1.0 - t) * mu_a[:, None] + t * mu_b[:, None]  # [P, S, *latent]
            decoded = pl_module.decode_to_pixels(z.flatten(0, 1))
        decoded = decoded.view(len(a), self.n_steps, *decoded.shape[1:]).to(a.dtype)
        return torch.cat([a[:, None], decoded, b[:, None]], dim=1)

    def draw(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not should_draw(trainer):
            return
        x = first_test_images(trainer, 2 * self.n_pairs)
        if x is None or len(x) < 2:
            return
        x = x[: len(x) // 2 * 2]
        rows = self.interpolate(pl_module, x).cpu().numpy()
        max_value = int(pl_module.n_categories) - 1
        grid = image_grid(rows.reshape(-1, *rows.shape[2:]), len(rows), max(max_value, 1))
        fig = Figure(figsize=(grid.shape[1] / 40, grid.shape[0] / 40 + 0.5))
        ax = fig.subplots()
        ax.imshow(grid, interpolation="nearest")
        ax.set_axis_off()
        decoded = optional_hook(pl_module, "decoded_label", "decoder means")
        ax.set_title(
            f"{type(pl_module).__name__}: test image a | {decoded} along (1−t)·μ(a) + t·μ(b), "
            "t = 0..1 | test image b",
            fontsize=8,
        )
        save_figure(trainer, fig, self.name)
