"""A run stopped mid-epoch resumes at the next batch even when the model's configure_optimizers
reads ``trainer.estimated_stepping_batches`` (Lightning then builds the training loader, and draws
its first batch, before it restores its loops; the data module's own state carries the position)."""

from __future__ import annotations

import math

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint

from ar_models import Histogram
from callbacks.stop_checkpoint import StopCheckpoint
from datamodules import WarmupDataModule


class ScheduledHistogram(Histogram):
    """A histogram with a cosine learning-rate decay over the whole run, sized from the trainer."""

    def configure_optimizers(self):
        optimizer = torch.optim.Adam(self.parameters(), lr=self.lr)
        total = int(self.trainer.estimated_stepping_batches)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step / total, 1.0)))
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }


class StopAt(pl.Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: pl.Trainer, *args: object) -> None:
        if trainer.global_step == self.step:
            trainer.should_stop = True


def fit(root, *callbacks: pl.Callback, ckpt_path: str | None = None) -> pl.Trainer:
    trainer = pl.Trainer(
        max_epochs=2,
        default_root_dir=root,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[
            *callbacks,
            StopCheckpoint(),
            ModelCheckpoint(dirpath=root / "checkpoints", save_last=True),
        ],
    )
    torch.manual_seed(0)
    trainer.fit(
        ScheduledHistogram(lr=0.05),
        datamodule=WarmupDataModule(batch_size=512),
        ckpt_path=ckpt_path,
    )
    return trainer


def logits(root) -> torch.Tensor:
    return torch.load(root / "checkpoints/last.ckpt", weights_only=False)["state_dict"]["logits"]


@pytest.mark.parametrize("stop", [5, 20])  # in the first and in the second epoch (15 per epoch)
def test_resumes_at_the_next_batch(tmp_path, stop):
    fit(tmp_path / "full")
    fit(tmp_path / "split", StopAt(stop))
    last = tmp_path / "split/checkpoints/last.ckpt"
    assert torch.load(last, weights_only=False)["global_step"] == stop
    fit(tmp_path / "split", ckpt_path=str(last))
    assert torch.equal(logits(tmp_path / "full"), logits(tmp_path / "split"))


def test_without_the_data_modules_state_the_epoch_would_restart(tmp_path):
    """The same resume from a checkpoint stripped of the data module's state goes wrong: what the
    data module's state is there for."""
    fit(tmp_path / "full")
    fit(tmp_path / "split", StopAt(5))
    last = tmp_path / "split/checkpoints/last.ckpt"
    checkpoint = torch.load(last, weights_only=False)
    del checkpoint["WarmupDataModule"]
    torch.save(checkpoint, last)
    fit(tmp_path / "split", ckpt_path=str(last))
    assert not torch.equal(logits(tmp_path / "full"), logits(tmp_path / "split"))


def test_state_is_only_for_the_next_fit(tmp_path):
    data = WarmupDataModule(batch_size=512)
    data.setup()
    assert data.state_dict() == {}  # no training loader yet
    loader = data.train_dataloader()
    assert data.state_dict() == {"train_position": {"epoch": 0, "batches_served": 0}}
    data.load_state_dict({"train_position": {"epoch": 1, "batches_served": 3}})
    data.teardown("test")  # restored by a test run: not carried into a later fit
    assert data.train_dataloader().state_dict() == {"epoch": 0, "batches_served": 0}
    data.load_state_dict({"train_position": {"epoch": 1, "batches_served": 3}})
    resumed = data.train_dataloader()
    assert resumed.state_dict() == {"epoch": 1, "batches_served": 3}
    assert len(list(resumed)) == len(loader) - 3
