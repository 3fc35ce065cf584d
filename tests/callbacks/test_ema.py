"""EMA: validation, checkpoints and a test of the best checkpoint all use the averaged weights."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint

from ar_models.ar_mlp import ARMLP
from callbacks.ema import EMA
from datamodules.two_d import Distribution2DDataModule


def test_test_after_fit_uses_the_averaged_weights(tmp_path: Path) -> None:
    p = np.random.RandomState(0).rand(10, 10)
    np.save(tmp_path / "d.npy", p / p.sum())
    dm = Distribution2DDataModule(path=str(tmp_path / "d.npy"), count=4000, batch_size=100)
    pl.seed_everything(0)
    model = ARMLP(n_categories=10, hidden_sizes=[16], encoding="one_hot", lr=3e-2)
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="val/bpd", mode="min")
    trainer = pl.Trainer(
        max_epochs=2,
        callbacks=[EMA(decay=0.9), checkpoint],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        default_root_dir=str(tmp_path),
    )
    trainer.fit(model, datamodule=dm)
    (result,) = trainer.test(model, datamodule=dm, ckpt_path=checkpoint.best_model_path)

    saved = torch.load(checkpoint.best_model_path, weights_only=False)
    averaged = ARMLP(n_categories=10, hidden_sizes=[16], encoding="one_hot").eval()
    averaged.load_state_dict(saved["state_dict"])
    raw = ARMLP(n_categories=10, hidden_sizes=[16], encoding="one_hot").eval()
    raw.load_state_dict(saved["current_model_state"])
    with torch.no_grad():
        bpd_avg = averaged.nll(dm.test.x).mean().item() / (2 * math.log(2))
        bpd_raw = raw.nll(dm.test.x).mean().item() / (2 * math.log(2))
    assert abs(bpd_avg - bpd_raw) > 1e-4  # the two differ, so the check below means something
    assert result["test/bpd"] == pytest.approx(bpd_avg, abs=1e-5)
    # the best validation score is that of the averaged weights
    with torch.no_grad():
        val_avg = averaged.nll(dm.val.x).mean().item() / (2 * math.log(2))
    assert checkpoint.best_model_score.item() == pytest.approx(val_avg, abs=1e-5)


def test_before_averaging_starts_the_current_weights_are_validated(tmp_path: Path) -> None:
    """With ``update_starting_at_step`` after the first validation, that validation scores the
    trained weights (Lightning's own callback would score the initial ones)."""
    p = np.random.RandomState(0).rand(10, 10)
    np.save(tmp_path / "d.npy", p / p.sum())
    dm = Distribution2DDataModule(path=str(tmp_path / "d.npy"), count=4000, batch_size=100)
    pl.seed_everything(0)
    model = ARMLP(n_categories=10, hidden_sizes=[16], encoding="one_hot", lr=3e-2)
    initial = ARMLP(n_categories=10, hidden_sizes=[16], encoding="one_hot").eval()
    initial.load_state_dict(model.state_dict())
    trainer = pl.Trainer(
        max_epochs=1,
        callbacks=[EMA(decay=0.9, update_starting_at_step=10**6)],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
        accelerator="cpu",
        default_root_dir=str(tmp_path),
    )
    trainer.fit(model, datamodule=dm)
    model.eval()
    with torch.no_grad():
        trained = model.nll(dm.val.x).mean().item() / (2 * math.log(2))
        untrained = initial.nll(dm.val.x).mean().item() / (2 * math.log(2))
    assert untrained - trained > 0.02  # training moved the weights, so the check means something
    assert trainer.callback_metrics["val/bpd"].item() == pytest.approx(trained, abs=1e-5)


def test_bad_decay() -> None:
    with pytest.raises(ValueError, match="decay"):
        EMA(decay=1.0)
