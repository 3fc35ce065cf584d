"""``load_model`` rebuilds the class a CLI checkpoint holds, with its weights; other checkpoints
need the class named, and unreadable files say what is wrong."""

from __future__ import annotations

import os

import pytest
import pytorch_lightning as pl
import torch

import train
from ar_models import MADE, Histogram
from ar_models.errors import CheckpointError
from datamodules import Distribution2DDataModule
from model_checkpoints import load_model, read_checkpoint, run_folder
from vae_models import VAE2D


def fit(root, config: str, *extra: str):
    """``fit`` one epoch of ``config`` from the repository into ``root``; its last.ckpt."""
    cwd = os.getcwd()
    os.chdir(train.Path(train.__file__).parent)
    try:
        train.main(
            [
                "fit",
                f"--config={config}",
                f"--trainer.default_root_dir={root}",
                "--trainer.max_epochs=1",
                "--trainer.enable_progress_bar=false",
                *extra,
            ]
        )
    finally:
        os.chdir(cwd)
    return root / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="module")
def histogram_ckpt(tmp_path_factory):
    return fit(tmp_path_factory.mktemp("load_model") / "run", "configs/hw1/warmup.yaml")


def same_weights(model: torch.nn.Module, ckpt) -> bool:
    saved = read_checkpoint(ckpt)["state_dict"]
    return saved.keys() == model.state_dict().keys() and all(
        torch.equal(saved[k], v) for k, v in model.state_dict().items()
    )


def test_a_histogram_checkpoint(histogram_ckpt):
    ckpt = histogram_ckpt
    model = load_model(ckpt)
    assert type(model) is Histogram and not model.training
    assert model.hparams.lr == 0.03
    assert same_weights(model, ckpt)
    assert run_folder(ckpt) == ckpt.parent.parent.resolve()


def test_a_vae_checkpoint(tmp_path):
    ckpt = fit(
        tmp_path / "run",
        "configs/hw3/vae_data1_diagonal.yaml",
        "--trainer.limit_train_batches=2",
        "--trainer.limit_val_batches=1",
        "--trainer.limit_test_batches=1",
        "--trainer.callbacks=[]",
    )
    model = load_model(ckpt)
    assert type(model) is VAE2D
    assert model.hparams.decoder_variance == "diagonal"
    assert same_weights(model, ckpt)
    assert model.sample(3).shape == (3, 2)


def test_a_checkpoint_written_without_the_cli_needs_its_class(tmp_path):
    trainer = pl.Trainer(
        max_steps=2, default_root_dir=tmp_path, logger=False, enable_progress_bar=False
    )
    data = Distribution2DDataModule(size=8, count=400)
    trainer.fit(MADE(n_vars=2, n_categories=8, hidden_sizes=[16]), datamodule=data)
    ckpt = tmp_path / "plain.ckpt"
    trainer.save_checkpoint(ckpt)
    with pytest.raises(CheckpointError, match="does not record its model class"):
        load_model(ckpt)
    model = load_model(ckpt, model_class=MADE)
    assert type(model) is MADE and same_weights(model, ckpt)


def test_a_class_that_disagrees_with_the_checkpoint(histogram_ckpt):
    with pytest.raises(CheckpointError, match="holds a Histogram .* not a MADE"):
        load_model(histogram_ckpt, model_class=MADE)


def test_unreadable_files(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "none.ckpt")
    text = tmp_path / "notes.ckpt"
    text.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="incomplete or not a checkpoint"):
        load_model(text)
    tensors = tmp_path / "tensors.pt"
    torch.save({"weights": torch.zeros(3)}, tensors)
    with pytest.raises(CheckpointError, match="without a state_dict: not a Lightning checkpoint"):
        load_model(tensors)
