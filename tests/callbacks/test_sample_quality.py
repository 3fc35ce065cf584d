"""SampleQualityMonitor measures what the model samples, logs it during fit and at test time
(results), draws the figure, and stays out of the way on data it cannot read."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import CSVLogger
from torch import Tensor, nn

from ar_models.base import DensityModel
from callbacks.sample_quality import SampleQualityMonitor, share
from datamodules.colored_mnist import ColoredMNISTDataModule
from metrics.synthetic import uniform_noise


class Replay(DensityModel):
    """A 'model' whose samples are given images, in order (and a dummy likelihood to train)."""

    n_categories = 4

    def __init__(self, images: Tensor) -> None:
        super().__init__()
        self.images = images
        self.weight = nn.Parameter(torch.zeros(()))

    @property
    def n_dims(self) -> int:
        return 3 * 28 * 28

    def nll(self, x: Tensor) -> Tensor:
        return (self.weight - 1.0) ** 2 * torch.ones(x.shape[0]) + 1.0

    def sample(self, n: int) -> Tensor:
        return self.images[:n]


def fit_and_test(tmp_path: Path, images: Tensor, every_n_epochs: int = 1) -> tuple[dict, Path]:
    data = ColoredMNISTDataModule(batch_size=50)
    monitor = SampleQualityMonitor(every_n_epochs=every_n_epochs, n_samples=len(images))
    trainer = pl.Trainer(
        default_root_dir=tmp_path,
        max_epochs=2,
        limit_train_batches=2,
        limit_val_batches=1,
        limit_test_batches=1,
        logger=CSVLogger(tmp_path, name="", version=""),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[monitor],
    )
    model = Replay(images)
    trainer.fit(model, datamodule=data)
    results = trainer.test(model, datamodule=data, verbose=False)[0]
    return results, tmp_path


@pytest.fixture(scope="module")
def held_out() -> Tensor:
    data = ColoredMNISTDataModule()
    data.setup()
    return data.test.x.long()


def test_real_images_score_high_and_are_logged(tmp_path, held_out):
    results, root = fit_and_test(tmp_path, held_out[:300])
    assert results["test/recognised"] >= 0.85
    assert results["test/label_entropy"] >= 3.2
    rows = [r for r in csv.DictReader(open(root / "metrics.csv")) if r.get("quality/recognised")]
    # after epoch 0 (step 2) and when fitting ends (step 4): the last epoch is measured once
    assert [int(r["step"]) for r in rows] == [2, 4]
    assert all(float(r["quality/recognised"]) >= 0.85 for r in rows)
    assert (root / "figures" / "sample_quality.png").is_file()


def test_noise_scores_low(tmp_path):
    noise = uniform_noise(200, 28, 4, torch.Generator().manual_seed(0))
    results, _ = fit_and_test(tmp_path, noise, every_n_epochs=0)
    assert results["test/recognised"] <= 0.1
    assert results["test/frechet"] > 100


def test_other_data_is_left_alone(tmp_path):
    monitor = SampleQualityMonitor()

    class NotDigits(pl.LightningDataModule):
        digit_domain = None

    trainer = pl.Trainer(default_root_dir=tmp_path, logger=False)
    trainer.datamodule = NotDigits()  # what fit/test attach
    assert not monitor.applies(trainer)


def test_history_survives_a_checkpoint():
    monitor = SampleQualityMonitor()
    monitor.history = [{"step": 2, "epoch": 0, "recognised": 0.5}]
    restored = SampleQualityMonitor()
    restored.load_state_dict(monitor.state_dict())
    assert restored.history == monitor.history


def test_shares_cover_the_samples_once():
    for n, world in [(400, 1), (400, 3), (7, 4)]:
        assert sum(share(n, rank, world) for rank in range(world)) == n


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_samples"):
        SampleQualityMonitor(n_samples=1)
