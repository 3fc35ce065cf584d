"""ReceptiveField: the gradient mask of the conditional at (14, 14, 0) at random initialisation
shows the raster-order support and the blind spot of the masked-conv PixelCNN, and none for the
gated one (also side by side, as in the docs' figure)."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from ar_models.gated_pixelcnn import GatedPixelCNN
from ar_models.pixelcnn import PixelCNN
from callbacks.receptive_field import (
    ReceptiveField,
    comparison_figure,
    fresh_copy,
    input_gradient,
    nominal_field,
)

PixelCNNMADE = functools.partial(PixelCNN, channel_model="made")


def before_in_raster_order(h: int, w: int, row: int, col: int) -> np.ndarray:
    return (np.arange(h * w) < row * w + col).reshape(h, w)


@pytest.mark.parametrize("cls", [PixelCNN, PixelCNNMADE])
def test_default_configuration_shows_the_blind_spot(cls: type) -> None:
    """128 filters, 12 blocks: the 7×7 type-A conv reaches 3 columns right of the target in the
    rows above; each 3×3 block adds one more only by also going one row up. So in the row just
    above the target, columns 14+4 .. 14+15 are inside the nominal receptive field (R = 15) but
    unseen: the blind spot."""
    model = fresh_copy(cls())
    grad = input_gradient(model, (14, 14, 0))
    assert grad.shape == (28, 28)
    support = grad > 0
    assert not (support & ~before_in_raster_order(28, 28, 14, 14)).any()  # nothing at/after target
    assert support[14, :14].all() and support[13, 11:18].all()  # the taps next to the target
    assert not support[13, 18:].any()  # row above: blind from 4 columns right of the target
    # above-right part of the nominal box: rows 0..13, columns 15..27 (R = 15 covers them all)
    above_right = support[:14, 15:]
    assert (~above_right).any() and above_right.any()
    # the blind spot is a staircase: row 14-d sees up to column 14 + 3 + (d - 1)
    for d in range(1, 15):
        reach = min(14 + 3 + d - 1, 27)
        assert support[14 - d, reach] and not support[14 - d, reach + 1 :].any()


def test_small_configuration_support_is_inside_the_nominal_box() -> None:
    model = fresh_copy(PixelCNN(n_filters=8, n_layers=2))  # R = 3 + 2 = 5
    support = input_gradient(model, (14, 14, 0)) > 0
    rows, cols = np.nonzero(support)
    assert rows.min() >= 14 - 5 and cols.min() >= 14 - 5 and cols.max() <= 14 + 5
    assert not (support & ~before_in_raster_order(28, 28, 14, 14)).any()


def test_fresh_copy_is_independent_and_reproducible() -> None:
    model = PixelCNN(image_shape=(3, 8, 8), n_filters=8, n_layers=1)
    model.hparams["_class_path"] = "ar_models.pixelcnn.PixelCNN"  # as LightningCLI leaves it
    before = {k: v.clone() for k, v in model.state_dict().items()}
    a, b = fresh_copy(model, seed=1), fresh_copy(model, seed=1)
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key])
        assert torch.equal(model.state_dict()[key], before[key])
    assert not torch.equal(a.net.layers[0].weight, model.net.layers[0].weight)


class RandomImages(pl.LightningDataModule):
    def train_dataloader(self) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(torch.randint(0, 4, (4, 3, 10, 10)), batch_size=2)


def test_callback_writes_the_figure(tmp_path: Path) -> None:
    callback = ReceptiveField(target=(5, 5, 0))
    trainer = pl.Trainer(
        default_root_dir=tmp_path,
        max_epochs=1,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[callback],
    )
    model = PixelCNN(image_shape=(3, 10, 10), n_filters=8, n_layers=1)
    trainer.fit(model, datamodule=RandomImages())
    assert (tmp_path / "figures" / "receptive_field.png").is_file()
    assert callback.gradient.shape == (10, 10)
    assert not (callback.gradient > 0)[~before_in_raster_order(10, 10, 5, 5)].any()


def test_nominal_field_by_hand() -> None:
    field = nominal_field((5, 6), (2, 3), 1)
    expected = np.zeros((5, 6), bool)
    expected[1, 2:5] = True  # the row above, columns 2..4
    expected[2, 2] = True  # the pixel to the left
    assert np.array_equal(field, expected)
    assert nominal_field((5, 6), (0, 0), 3).sum() == 0  # nothing precedes the first pixel


def test_comparison_figure_counts_the_blind_spot(tmp_path: Path) -> None:
    """At the same depth (R = 3 + 3 = 6, 16×16 images) the masked PixelCNN misses part of the
    nominal field above and to the right of the target, the gated one reads all of it."""
    models = {
        "PixelCNN": PixelCNN(image_shape=(3, 16, 16), n_filters=8, n_layers=3),
        "GatedPixelCNN": GatedPixelCNN(image_shape=(3, 16, 16), n_filters=8, n_layers=3),
    }
    field = nominal_field((16, 16), (8, 8), 6)
    seen = {}
    for name, model in models.items():
        assert model.receptive_radius == 6
        support = input_gradient(fresh_copy(model), (8, 8, 0)) > 0
        seen[name] = int((support & field).sum())
        assert not (support & ~field).any()
    assert seen["GatedPixelCNN"] == field.sum() > seen["PixelCNN"]
    fig = comparison_figure(models, (8, 8, 0))
    titles = [ax.get_title() for ax in fig.axes]
    assert f"reads {seen['PixelCNN']} of the {field.sum()}" in titles[0]
    assert f"reads {field.sum()} of the {field.sum()}" in titles[1]
    fig.savefig(tmp_path / "comparison.png")


def test_callback_draws_a_conditional_model(tmp_path: Path) -> None:
    """A class-conditional model's conditionals are read for one label; its field has no gaps."""
    callback = ReceptiveField(target=(5, 5, 1))
    trainer = pl.Trainer(
        default_root_dir=tmp_path,
        max_steps=1,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[callback],
    )
    model = GatedPixelCNN(image_shape=(3, 10, 10), n_filters=8, n_layers=1, n_classes=3)
    labelled = [(torch.randint(0, 4, (3, 10, 10)), torch.tensor(i % 3)) for i in range(4)]
    trainer.fit(model, train_dataloaders=torch.utils.data.DataLoader(labelled, batch_size=2))
    assert (tmp_path / "figures" / "receptive_field.png").is_file()
    assert np.array_equal(callback.gradient > 0, nominal_field((10, 10), (5, 5), 4))
