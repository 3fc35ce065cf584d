"""The VAE figure callbacks draw from the model's hooks, with and without labels."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch

from callbacks.latent_scatter import LatentScatter, training_points
from callbacks.loss_curves import LossCurves
from callbacks.vae_samples import VAESamples
from datamodules.toy2d import Toy2DDataModule
from vae_models.vae2d import VAE2D


def short_run(tmp_path, dataset: int, callbacks: list[pl.Callback]) -> pl.Trainer:
    torch.manual_seed(0)
    data = Toy2DDataModule(dataset=dataset, count=3000, batch_size=100)
    model = VAE2D(hidden=16, n_hidden_layers=1, iwae_k=5, iwae_points=10)
    trainer = pl.Trainer(
        default_root_dir=tmp_path,
        max_epochs=1,
        limit_train_batches=5,
        limit_val_batches=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks,
    )
    trainer.fit(model, datamodule=data)
    trainer.test(model, datamodule=data, verbose=False)
    return trainer


@pytest.mark.parametrize("dataset", [1, 3])
def test_figures_are_written(tmp_path, dataset):
    callbacks = [
        VAESamples(n_samples=200, n_data=300),
        LatentScatter(n_points=300),
        LossCurves(terms=["bpd", "kl_bpd", "recon_bpd"]),
    ]
    short_run(tmp_path, dataset, callbacks)
    for name in ("vae_samples", "latent_scatter", "loss_curves"):
        assert (tmp_path / "figures" / f"{name}.png").stat().st_size > 10_000


def test_training_points_keep_labels_and_count():
    data = Toy2DDataModule(dataset=3, count=3000, batch_size=64)
    data.setup()
    trainer = pl.Trainer(logger=False, enable_progress_bar=False)
    trainer.datamodule = data  # what fit/test set; enough for the helper
    x, y = training_points(trainer, 150)
    assert x.shape == (150, 2) and y.shape == (150,) and y.dtype == torch.long


def test_latent_kl_printed_per_dimension(tmp_path, capsys, caplog):
    short_run(tmp_path, 1, [LatentScatter(n_points=100)])
    text = capsys.readouterr().out + capsys.readouterr().err + caplog.text
    assert "per latent dimension (nats): z0:" in text


def test_callbacks_restore_train_mode(tmp_path):
    model = VAE2D(hidden=8, n_hidden_layers=1)
    model.train()
    trainer = pl.Trainer(default_root_dir=tmp_path, logger=False, enable_progress_bar=False)
    data = Toy2DDataModule(dataset=1, count=1000, batch_size=50)
    data.setup()
    trainer.datamodule = data
    VAESamples(n_samples=50, n_data=50).draw(trainer, model)
    LatentScatter(n_points=50).draw(trainer, model)
    assert model.training
    assert (tmp_path / "figures" / "vae_samples.png").is_file()
