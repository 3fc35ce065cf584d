"""TimedCheckpoint: last.ckpt once the interval has passed and at every epoch end, on a fake clock
(one "second" per training batch)."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint

import callbacks.timed_checkpoint as timed
from ar_models import Histogram
from callbacks.ema import EMA
from callbacks.timed_checkpoint import TimedCheckpoint
from datamodules import WarmupDataModule


class Clock(pl.Callback):
    """A fake ``time.monotonic`` that advances one second per training batch."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def on_train_batch_start(self, *args: object) -> None:
        self.now += 1.0


class Saves(pl.Callback):
    """Global step and batch index of every checkpoint written."""

    def __init__(self) -> None:
        self.steps: list[int] = []

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        self.steps.append(trainer.global_step)


def fit(tmp_path, monkeypatch, *callbacks: pl.Callback, with_model_checkpoint: bool, **kw):
    clock, saves = Clock(), Saves()
    monkeypatch.setattr(timed.time, "monotonic", clock)
    extra = [ModelCheckpoint(dirpath=tmp_path / "checkpoints", save_last=True)]
    trainer = pl.Trainer(
        max_epochs=2,
        default_root_dir=tmp_path,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=with_model_checkpoint,
        callbacks=[clock, *callbacks, saves, *(extra if with_model_checkpoint else [])],
        **kw,
    )
    data = WarmupDataModule(batch_size=512)
    trainer.fit(Histogram(), datamodule=data)
    return trainer, saves.steps


def test_saves_every_interval_and_at_every_epoch_end(tmp_path, monkeypatch):
    trainer, steps = fit(
        tmp_path, monkeypatch, TimedCheckpoint(every_minutes=4 / 60), with_model_checkpoint=False
    )
    per_epoch = trainer.num_training_batches  # 15 batches of 512
    assert per_epoch == 15
    # after batches 4, 8, 12 (not 16: the epoch's last batch, then the epoch-end save at 15)
    assert steps == [4, 8, 12, 15, 19, 23, 27, 30]
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    assert (
        torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 30
    )


def test_model_checkpoint_saves_restart_the_clock_and_share_last_ckpt(tmp_path, monkeypatch):
    """ModelCheckpoint(save_last) writes last.ckpt after validation: no second epoch-end save,
    the clock restarts there, and both rewrite the same last.ckpt (no last-v1.ckpt)."""
    _, steps = fit(
        tmp_path, monkeypatch, TimedCheckpoint(every_minutes=4 / 60), with_model_checkpoint=True
    )
    assert steps.count(15) == 2  # ModelCheckpoint's top-k file and its last.ckpt: one save each
    assert steps == [4, 8, 12, 15, 15, 19, 23, 27, 30, 30]
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("last*")) == ["last.ckpt"]


def test_no_mid_epoch_save_inside_a_gradient_accumulation_window(tmp_path, monkeypatch):
    _, steps = fit(
        tmp_path,
        monkeypatch,
        TimedCheckpoint(every_minutes=3 / 60),
        with_model_checkpoint=False,
        accumulate_grad_batches=2,
    )
    # optimiser steps after batches 2, 4, ...; due after batch 3 but saved after batch 4 (step 2)
    assert steps[0] == 2 and all(isinstance(s, int) for s in steps)


def test_no_mid_epoch_save_after_a_batch_whose_metrics_are_logged(tmp_path, monkeypatch):
    """Lightning writes the logged row of every 4th step after the batch-end hooks: the save
    moves to the next batch, so that a kill after the checkpoint cannot lose that row."""
    _, steps = fit(
        tmp_path,
        monkeypatch,
        TimedCheckpoint(every_minutes=3 / 60),
        with_model_checkpoint=False,
        log_every_n_steps=4,
    )
    mid_epoch = [s for s in steps if s % 15 != 0]
    assert mid_epoch == [3, 6, 9, 13, 18, 21, 25, 29]
    assert all(s % 4 != 0 for s in mid_epoch)


def test_listed_before_an_ema_it_stops_with_a_clear_message(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="list it after EMA"):
        fit(tmp_path, monkeypatch, TimedCheckpoint(), EMA(), with_model_checkpoint=False)


def test_nothing_under_fast_dev_run(tmp_path, monkeypatch):
    _, steps = fit(
        tmp_path, monkeypatch, TimedCheckpoint(), with_model_checkpoint=False, fast_dev_run=True
    )
    assert steps == [] and not (tmp_path / "checkpoints").exists()


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), True, "10"])
def test_bad_interval(bad):
    with pytest.raises(ValueError, match="every_minutes"):
        TimedCheckpoint(every_minutes=bad)


def test_bad_filename():
    with pytest.raises(ValueError, match="filename"):
        TimedCheckpoint(filename="sub/last.ckpt")
