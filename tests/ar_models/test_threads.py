"""Thread defaults: one intra-op thread while a model without convolutions fits on CPU, torch's
default for convolutional models, and never a change where the user chose a count."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch

import ar_models.threads as threads
from ar_models import Histogram
from ar_models.pixelcnn import PixelCNN
from datamodules import WarmupDataModule
from vae_models.conv_vae import ConvVAE
from vae_models.vae2d import VAE2D

CPU = torch.device("cpu")


@pytest.fixture
def default_of_three(monkeypatch):
    """torch's default count is 3 here and no thread variable is set; restored afterwards."""
    before = torch.get_num_threads()
    for name in threads.THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(threads, "_TORCH_DEFAULT", 3)
    monkeypatch.setattr(threads, "_chosen", None)
    torch.set_num_threads(3)
    yield
    torch.set_num_threads(before)


def test_the_rule_by_kind():
    assert threads.prefers_one_thread(Histogram())
    assert threads.prefers_one_thread(VAE2D())
    assert not threads.prefers_one_thread(PixelCNN(n_filters=8, n_layers=1))
    assert not threads.prefers_one_thread(ConvVAE(n_filters=8, n_layers=1, latent_shape=(2, 8, 8)))
    big = torch.nn.Linear(4000, 4000)  # 16M parameters, no convolution
    assert threads.model_kind(big) == "mlp" and not threads.prefers_one_thread(big)


def test_chosen_and_restored(default_of_three):
    previous = threads.choose_threads(Histogram(), CPU)
    assert previous == 3 and torch.get_num_threads() == 1
    threads.restore_threads(previous)
    assert torch.get_num_threads() == 3
    assert threads.choose_threads(PixelCNN(n_filters=8, n_layers=1), CPU) is None
    assert torch.get_num_threads() == 3


def test_a_users_choice_is_kept(default_of_three, monkeypatch):
    torch.set_num_threads(2)  # torch.set_num_threads by the user
    assert threads.choose_threads(Histogram(), CPU) is None and torch.get_num_threads() == 2
    torch.set_num_threads(3)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads.choose_threads(Histogram(), CPU) is None and torch.get_num_threads() == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert threads.choose_threads(Histogram(), torch.device("cuda")) is None


def test_a_count_changed_during_the_run_is_not_undone(default_of_three):
    previous = threads.choose_threads(Histogram(), CPU)
    torch.set_num_threads(2)
    threads.restore_threads(previous)
    assert torch.get_num_threads() == 2


class RecordThreads(pl.Callback):
    def __init__(self) -> None:
        self.seen: set[int] = set()

    def on_train_batch_start(self, *args: object) -> None:
        self.seen.add(torch.get_num_threads())

    def on_validation_batch_start(self, *args: object) -> None:
        self.seen.add(torch.get_num_threads())


def test_fit_of_a_library_user_trains_with_one_thread_and_restores(default_of_three):
    record = RecordThreads()
    trainer = pl.Trainer(
        max_epochs=1,
        limit_train_batches=3,
        limit_val_batches=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        callbacks=[record],
    )
    trainer.fit(Histogram(), datamodule=WarmupDataModule())
    assert record.seen == {1}
    assert torch.get_num_threads() == 3
