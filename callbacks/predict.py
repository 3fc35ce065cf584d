"""``predict``: draw samples from a checkpoint into ``samples.npy`` and ``samples.png``.

:class:`DeepulTrainer` is the CLI's Trainer; its ``predict`` takes the subcommand's options
(``--n``, ``--seed``, ``--labels``, ``--batch_size``) from its signature. It runs the model's
``setup("predict")`` before sampling and ``teardown("predict")`` after (the CPU thread default of
``DensityModel.setup`` applies), and logs the picture to every attached W&B logger.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import WandbLogger
from pytorch_lightning.utilities import rank_zero_info
from torch import Tensor

from ar_models.errors import UsageError
from callbacks.figures import samples_figure
from model_checkpoints import read_checkpoint


def sample_labels(model: pl.LightningModule, n: int, labels: int | list[int] | None) -> Tensor:
    """The label of each of ``n`` samples of a class-conditional model (``n_classes`` > 0):
    classes 0, 1, ..., n_classes-1 in turn by default, else ``labels`` (one class, or a list
    repeated over the samples)."""
    n_classes = int(getattr(model, "n_classes", 0) or 0)
    if isinstance(labels, int):
        labels = [labels]
    chosen = list(range(n_classes)) if labels is None else list(labels)
    if not chosen or any(not 0 <= y < n_classes for y in chosen):
        raise UsageError(
            f"--labels {labels}: {type(model).__name__} has {n_classes} classes; "
            f"expected labels in 0..{n_classes - 1}"
        )
    return torch.tensor(chosen).repeat(-(-n // len(chosen)))[:n]


def draw_samples(
    model: pl.LightningModule, n: int, labels: Tensor | None, batch_size: int
) -> Tensor:
    """``n`` samples of ``model`` (on the CPU), drawn ``batch_size`` at a time in eval mode
    without gradients; ``model.sample(m, y=labels)`` for a class-conditional model."""
    parts = []
    model.eval()
    with torch.no_grad():
        for start in range(0, n, batch_size):
            m = min(batch_size, n - start)
            if labels is None:
                part = model.sample(m)
            else:
                part = model.sample(m, y=labels[start : start + m].to(model.device))
            parts.append(part.cpu())
    return torch.cat(parts)


def describe_samples(samples: Tensor) -> str:
    """``2,000 samples, each one int64 value`` or ``64 samples of shape (3, 28, 28), uint8``."""
    dtype = str(samples.dtype).removeprefix("torch.")
    if samples.dim() == 1:
        return f"{len(samples):,} samples, each one {dtype} value"
    return f"{len(samples):,} samples of shape {tuple(samples.shape[1:])}, {dtype}"


class DeepulTrainer(pl.Trainer):
    """Lightning's Trainer; its predict subcommand draws samples from a checkpoint."""

    def predict(  # type: ignore[override]
        self,
        model: pl.LightningModule | None = None,
        datamodule: pl.LightningDataModule | None = None,
        ckpt_path: str | None = None,
        n: int = 64,
        seed: int = 0,
        labels: int | list[int] | None = None,
        batch_size: int | None = None,
        weights_only: bool | None = None,
    ) -> Tensor:
        """Draw n samples from a checkpoint and save them (samples.npy, samples.png).

        Args:
            model: the model (its weights are replaced by the checkpoint's).
            datamodule: unused (the data are not needed to sample).
            ckpt_path: the checkpoint to sample from.
            n: number of samples.
            seed: seed of the draw (the same seed gives the same samples).
            labels: for a class-conditional model, the class of the samples: one class, or a list
                repeated over the samples (default: every class in turn).
            batch_size: samples drawn at once (default: all n).
            weights_only: unused (checkpoints are read with ``weights_only=True``).
        """
        if model is None or ckpt_path is None:
            raise UsageError("predict needs a model and --ckpt_path")
        if n < 1 or (batch_size is not None and batch_size < 1):
            raise UsageError(f"--n and --batch_size must be >= 1, got {n} and {batch_size}")
        conditional = int(getattr(model, "n_classes", 0) or 0) > 0
        if labels is not None and not conditional:
            raise UsageError(
                f"--labels: {type(model).__name__} is not class-conditional (n_classes = 0)"
            )
        checkpoint = read_checkpoint(ckpt_path)
        model.on_load_checkpoint(checkpoint)
        model.load_state_dict(checkpoint["state_dict"], strict=model.strict_loading)
        model.to(self.strategy.root_device)
        model.trainer = self  # what setup reads (the device)
        y = sample_labels(model, n, labels) if conditional else None
        model.setup("predict")
        try:
            pl.seed_everything(seed, verbose=False)
            samples = draw_samples(model, n, y, batch_size or n)
        finally:
            model.teardown("predict")
        self.save_samples(model, Path(ckpt_path), samples, y, seed)
        return samples

    def save_samples(
        self,
        model: pl.LightningModule,
        ckpt_path: Path,
        samples: Tensor,
        labels: Tensor | None,
        seed: int,
    ) -> None:
        """``samples.npy`` (and ``labels.npy``) and the picture ``samples.png`` in
        ``default_root_dir``, the picture also to W&B as ``predict/samples`` (rank zero)."""
        if not self.is_global_zero:
            return
        folder = Path(self.default_root_dir)
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "samples.npy", samples.numpy())
        if labels is not None:
            np.save(folder / "labels.npy", labels.numpy())
        n_classes = int(getattr(model, "n_classes", 0) or 0)
        name = type(model).__name__
        title = f"{name}: {len(samples):,} samples of {ckpt_path.name} (seed {seed})"
        fig = samples_figure(
            samples.numpy(),
            title,
            n_levels=getattr(model, "n_categories", None),
            labels=None if labels is None else labels.numpy(),
            ncols=n_classes or None,  # a class-conditional model: one column per class
        )
        rank_zero_info(f"samples: {folder / 'samples.npy'} ({describe_samples(samples)})")
        if fig is None:
            rank_zero_info(f"no picture of {describe_samples(samples)}")
            return
        picture = folder / "samples.png"
        fig.savefig(picture, dpi=100, bbox_inches="tight")
        rank_zero_info(f"picture: {picture}")
        for logger in self.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(key="predict/samples", images=[str(picture)], caption=[title])
