"""SampleGrid: the grid image, scaling, seeding, and the PNGs it writes during and after fit."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from ar_models.pixelcnn import PixelCNN
from callbacks.sample_grid import SampleGrid, image_grid
from datamodules.colored_mnist import ColoredMNISTDataModule


def test_image_grid_layout_and_scaling() -> None:
    images = np.arange(4).reshape(4, 1, 1, 1).repeat(3, axis=1)  # four 1×1 RGB images, values 0..3
    grid = image_grid(images, n_rows=2, max_value=3, pad=1)
    assert grid.shape == (5, 5, 3) and grid.dtype == np.uint8
    assert grid[1, 1].tolist() == [0, 0, 0] and grid[1, 3].tolist() == [85, 85, 85]
    assert grid[3, 1].tolist() == [170, 170, 170] and grid[3, 3].tolist() == [255, 255, 255]
    assert (grid[0] == 255).all() and (grid[:, 2] == 255).all()  # white padding
    grey = image_grid(np.full((1, 1, 2, 2), 1), n_rows=1, max_value=1, pad=0)
    assert grey.shape == (2, 2, 3) and (grey == 255).all()
    with pytest.raises(ValueError, match="1 or 3 channels"):
        image_grid(np.zeros((1, 2, 2, 2)), 1, 3)


def test_samples_are_seeded_and_leave_the_global_rng_alone() -> None:
    torch.manual_seed(0)
    model = PixelCNN(image_shape=(3, 4, 4), n_filters=8, n_layers=1)
    callback = SampleGrid(n_samples=5, seed=3)
    state = torch.get_rng_state()
    first, second = callback.samples(model), callback.samples(model)
    assert torch.equal(first, second) and first.shape == (5, 3, 4, 4)
    assert torch.equal(torch.get_rng_state(), state)
    assert model.training  # mode restored


@pytest.fixture
def tiny_data(tmp_path: Path) -> ColoredMNISTDataModule:
    rng = np.random.default_rng(0)
    data = {
        k: rng.integers(0, 4, (n, 6, 6, 3), dtype=np.uint8) for k, n in [("train", 20), ("test", 4)]
    }
    path = tmp_path / "tiny.pkl"
    path.write_bytes(pickle.dumps(data))
    return ColoredMNISTDataModule(pickle_path=str(path), batch_size=10, val_fraction=0.2)


def test_grid_pngs_during_and_after_fit(tmp_path: Path, tiny_data: ColoredMNISTDataModule) -> None:
    model = PixelCNN(image_shape=(3, 6, 6), n_filters=8, n_layers=1)
    trainer = pl.Trainer(
        default_root_dir=tmp_path / "run",
        max_epochs=3,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[SampleGrid(every_n_epochs=1, n_samples=4, n_rows=2)],
    )
    trainer.fit(model, datamodule=tiny_data)
    figures = sorted(p.name for p in (tmp_path / "run" / "figures").iterdir())
    # steps after epochs 1 and 2 (2 batches per epoch); the last epoch is drawn once, at the end
    assert figures == ["samples.png", "samples_step2.png", "samples_step4.png"]
