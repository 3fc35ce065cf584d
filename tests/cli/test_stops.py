"""Runs that stop on their own keep their work; W&B can be switched off entirely."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

import train
from ar_models import Histogram, NonFiniteLossError
from callbacks.loss_curves import LossCurves
from callbacks.stop_checkpoint import StopCheckpoint
from datamodules import WarmupDataModule


class PoisonAtStep(pl.Callback):
    """Makes the model's loss NaN from training step ``step`` on."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            with torch.no_grad():
                pl_module.logits[batch[0]] = float("nan")


def test_non_finite_loss_stops_naming_the_step_and_keeps_the_work(tmp_path):
    trainer = pl.Trainer(
        max_epochs=5,
        default_root_dir=tmp_path,
        logger=False,
        enable_progress_bar=False,
        callbacks=[
            pl.callbacks.ModelCheckpoint(dirpath=tmp_path / "checkpoints", save_last=True),
            StopCheckpoint(),
            LossCurves(),
            PoisonAtStep(30),
        ],
    )
    with pytest.raises(NonFiniteLossError, match="global step 30"):
        trainer.fit(Histogram(), datamodule=WarmupDataModule(batch_size=256))
    assert (tmp_path / "checkpoints" / "nonfinite-step30.ckpt").is_file()
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()  # epoch-end save, kept
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)
    assert torch.isfinite(last["state_dict"]["logits"]).all()
    assert (tmp_path / "figures" / "loss_curves.png").is_file()


def test_wandb_disabled_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.chdir(Path(train.__file__).parent)
    root = tmp_path / "run"
    train.main(
        [
            "fit",
            "--config=configs/hw1/warmup.yaml",
            "--trainer.max_epochs=1",
            f"--trainer.default_root_dir={root}",
            "--trainer.enable_progress_bar=false",
        ]
    )
    assert (root / "results.json").is_file()
    assert not (root / "wandb").exists()
    assert not any("wandb" in p.name for p in Path(os.getcwd()).iterdir())


def test_fresh_fit_moves_an_earlier_run_aside(tmp_path, monkeypatch):
    monkeypatch.chdir(Path(train.__file__).parent)
    root = tmp_path / "run"
    args = [
        "fit",
        "--config=configs/hw1/warmup.yaml",
        "--trainer.max_epochs=1",
        f"--trainer.default_root_dir={root}",
        "--trainer.enable_progress_bar=false",
    ]
    train.main(args)
    train.main(args)
    earlier = [p for p in tmp_path.iterdir() if p.name.startswith("run-")]
    assert len(earlier) == 1
    assert (earlier[0] / "results.json").is_file() and (root / "results.json").is_file()
