"""Interpolations between test images through the posterior means, drawn after fit and test."""

from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import torch
from scipy.io import savemat

from callbacks.interpolations import Interpolations
from callbacks.loss_curves import LossCurves
from callbacks.sample_grid import SampleGrid
from datamodules.svhn import SVHNDataModule
from vae_models.conv_vae import ConvVAE


def tiny_svhn(folder) -> SVHNDataModule:
    rng = np.random.default_rng(0)
    for name, n in (("train_32x32.mat", 40), ("test_32x32.mat", 12)):
        x = rng.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)
        savemat(folder / name, {"X": x, "y": rng.integers(1, 11, size=(n, 1)).astype(np.uint8)})
    return SVHNDataModule(data_dir=str(folder), batch_size=8)


def tiny_model(prior: str) -> ConvVAE:
    torch.manual_seed(0)
    return ConvVAE(prior=prior, latent_shape=(2, 8, 8), n_filters=8, n_layers=1, prior_filters=4)


def test_rows_start_and_end_at_the_pair():
    model = tiny_model("normal")
    x = torch.randint(0, 256, (4, 3, 32, 32))
    rows = Interpolations(n_pairs=2, n_steps=5).interpolate(model, x)
    assert rows.shape == (2, 7, 3, 32, 32) and rows.dtype == torch.long
    assert torch.equal(rows[:, 0], x[0::2]) and torch.equal(rows[:, -1], x[1::2])
    with torch.no_grad():
        ends = model.decode_to_pixels(model.posterior_mean(x))
    assert torch.equal(rows[:, 1], ends[0::2]) and torch.equal(rows[:, -2], ends[1::2])


class BatchTypes(pl.Callback):
    """Records the dtype of every training batch the model receives."""

    def __init__(self) -> None:
        self.dtypes: set[torch.dtype] = set()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.dtypes.add(batch[0].dtype)


def test_every_figure_is_drawn(tmp_path):
    data = tiny_svhn(tmp_path)
    batch_types = BatchTypes()
    trainer = pl.Trainer(
        default_root_dir=tmp_path,
        max_epochs=1,
        limit_train_batches=2,
        limit_val_batches=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[
            Interpolations(n_pairs=5, n_steps=4),
            SampleGrid(every_n_epochs=0, n_samples=4, n_rows=2),
            LossCurves(terms=["bpd", "kl_bpd", "recon_bpd"]),
            batch_types,
        ],
    )
    model = tiny_model("flow")
    trainer.fit(model, datamodule=data)
    trainer.test(model, datamodule=data, verbose=False)
    assert batch_types.dtypes == {torch.long}  # the trainer's loaders serve int64 images
    for name in ("interpolations", "samples", "loss_curves"):
        assert (tmp_path / "figures" / f"{name}.png").stat().st_size > 5_000
