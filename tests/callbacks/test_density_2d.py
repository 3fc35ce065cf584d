"""Density2D: the learned density over all states, the KL, and a PNG in the run's figures/."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from ar_models.ar_mlp import ARMLP
from ar_models.made import MADE
from callbacks.density_2d import Density2D, kl_bits_per_dim, model_density
from datamodules.two_d import Distribution2DDataModule


def tiny_datamodule(tmp_path: Path, k: int = 8) -> Distribution2DDataModule:
    p = np.random.RandomState(0).rand(k, k) + 0.1
    path = tmp_path / "distribution.npy"
    np.save(path, p / p.sum())
    return Distribution2DDataModule(path=str(path), count=2000, batch_size=100)


def tiny_trainer(tmp_path: Path, callback: Density2D, epochs: int = 1) -> pl.Trainer:
    return pl.Trainer(
        default_root_dir=str(tmp_path / "run"),
        max_epochs=epochs,
        limit_train_batches=3,
        limit_val_batches=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        callbacks=[callback],
    )


@pytest.mark.parametrize("model_cls", [ARMLP, MADE])
def test_writes_the_figure_after_fit(tmp_path: Path, model_cls: type) -> None:
    dm = tiny_datamodule(tmp_path)
    model = model_cls(n_categories=8, hidden_sizes=[8])
    trainer = tiny_trainer(tmp_path, Density2D(n_samples=500))
    trainer.fit(model, datamodule=dm)
    png = tmp_path / "run" / "figures" / "density_2d.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert model.training  # the callback restored the training mode


def test_draws_every_n_epochs_with_the_step_in_the_name(tmp_path: Path) -> None:
    dm = tiny_datamodule(tmp_path)
    trainer = tiny_trainer(tmp_path, Density2D(n_samples=100, every_n_epochs=1, name="d"), epochs=2)
    trainer.fit(ARMLP(n_categories=8, hidden_sizes=[4]), datamodule=dm)
    names = sorted(p.name for p in (tmp_path / "run" / "figures").iterdir())
    assert names == ["d.png", "d_step3.png", "d_step6.png"]


def test_model_density_is_normalised_and_ordered_row_major() -> None:
    model = ARMLP(n_categories=5, hidden_sizes=[4]).eval()
    q = model_density(model, 5, batch_size=7)
    assert q.shape == (5, 5) and abs(q.sum() - 1) < 1e-6
    x = torch.tensor([[3, 1]])
    assert q[3, 1] == pytest.approx(torch.exp(-model.nll(x)).item(), rel=1e-6)


def test_kl_bits_per_dim() -> None:
    p = np.array([[0.5, 0.5], [0.0, 0.0]])
    q = np.full((2, 2), 0.25)
    assert kl_bits_per_dim(p, q) == pytest.approx(0.5)  # log2(0.5 / 0.25) = 1 bit over 2 dims
    assert kl_bits_per_dim(p, p) == 0.0
    assert kl_bits_per_dim(p, np.array([[1.0, 0.0], [0.0, 0.0]])) == np.inf
