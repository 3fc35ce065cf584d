"""The VAE figure callbacks draw from the model's hooks, with and without labels; the
reconstruction accuracy reads what the reconstructions show."""

from __future__ import annotations

import warnings

import pytest
import pytorch_lightning as pl
import torch

from callbacks.latent_scatter import LatentScatter, training_points
from callbacks.loss_curves import LossCurves
from callbacks.reconstructions import Reconstructions
from callbacks.vae_samples import VAESamples
from datamodules.svhn import SVHNDataModule
from datamodules.toy2d import Toy2DDataModule
from tests.callbacks.test_interpolations import tiny_svhn
from vae_models.conv_vae import ConvVAE
from vae_models.vae2d import VAE2D


def short_run(tmp_path, dataset: int, callbacks: list[pl.Callback]) -> pl.Trainer:
    torch.manual_seed(0)
    data = Toy2DDataModule(dataset=dataset, count=3000, batch_size=100)
    model = VAE2D(hidden_sizes=[16], iwae_k=5, iwae_points=10)
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
    model = VAE2D(hidden_sizes=[8])
    model.train()
    trainer = pl.Trainer(default_root_dir=tmp_path, logger=False, enable_progress_bar=False)
    data = Toy2DDataModule(dataset=1, count=1000, batch_size=50)
    data.setup()
    trainer.datamodule = data
    VAESamples(n_samples=50, n_data=50).draw(trainer, model)
    LatentScatter(n_points=50).draw(trainer, model)
    assert model.training
    assert (tmp_path / "figures" / "vae_samples.png").is_file()


class Echo(pl.LightningModule):
    """Reconstruction hooks with a known answer: the input itself, or one grey image for every
    input (a decoder that ignores z)."""

    n_categories = 256

    def __init__(self, blank: bool) -> None:
        super().__init__()
        self.blank = blank
        self.unused = torch.nn.Parameter(torch.zeros(()))

    def posterior_mean(self, x: torch.Tensor) -> torch.Tensor:
        return x.float()

    def decode_to_pixels(self, z: torch.Tensor) -> torch.Tensor:
        return torch.full_like(z, 128).long() if self.blank else z.long()

    def test_step(self, batch, batch_idx) -> None:
        pass


def stand_in() -> SVHNDataModule:
    data = SVHNDataModule(batch_size=100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the stand-in warning
        data.setup()
    return data


@pytest.mark.parametrize("blank, low, high", [(False, 0.9, 1.0), (True, 0.0, 0.2)])
def test_reconstruction_accuracy_reads_the_reconstructions(tmp_path, blank, low, high):
    """Perfect reconstructions are read as their labels (the reader's accuracy on real test
    digits, 97%); grey images that ignore the input are not."""
    callback = Reconstructions(n_images=8, max_accuracy_images=300)
    trainer = pl.Trainer(
        default_root_dir=tmp_path,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[callback],
    )
    logged = trainer.test(Echo(blank), datamodule=stand_in(), verbose=False)[0]
    assert low <= logged["test/recon_accuracy"] <= high
    assert callback._seen == 300
    assert (tmp_path / "figures" / "reconstructions.png").stat().st_size > 5_000


def test_reconstructions_of_a_conv_vae_without_digit_data(tmp_path):
    """Real-SVHN-format data (digit_domain None): the figure, no accuracy."""
    data = tiny_svhn(tmp_path)
    torch.manual_seed(0)
    model = ConvVAE(latent_shape=(2, 8, 8), n_filters=8, n_layers=1)
    trainer = pl.Trainer(
        default_root_dir=tmp_path,
        max_steps=1,
        limit_val_batches=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[Reconstructions(n_images=6, n_per_row=3)],
    )
    trainer.fit(model, datamodule=data)
    logged = trainer.test(model, datamodule=data, verbose=False)[0]
    assert "test/recon_accuracy" not in logged
    assert {"test/active_units", "test/mi_nats"} <= set(logged)
    assert (tmp_path / "figures" / "reconstructions.png").stat().st_size > 5_000
    with pytest.raises(ValueError, match="n_images"):
        Reconstructions(n_images=0)
