"""The model hooks the callbacks call (callbacks.hooks): a model that lacks one stops the run at
setup with an error naming the callback, the model class and the missing hooks; every model of the
configs has the hooks of the callbacks its config attaches."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch

import train
from ar_models.histogram import Histogram
from ar_models.pixelcnn import PixelCNN
from callbacks.hooks import (
    ImageSampler,
    LatentImageModel,
    MaskedImageModel,
    MissingHooksError,
    NoisySampler,
    PriorModel,
    missing_hooks,
)
from callbacks.interpolations import Interpolations
from callbacks.prior_fit import FitPrior
from callbacks.receptive_field import ReceptiveField
from callbacks.sample_grid import SampleGrid
from callbacks.vae_samples import VAESamples
from datamodules.warmup import WarmupDataModule
from tests.cli.test_every_config import CONFIG_ROOT, CONFIGS
from vae_models.conv_vae import ConvVAE
from vae_models.vae2d import VAE2D


def tiny_pixelcnn() -> PixelCNN:
    return PixelCNN(image_shape=(3, 6, 6), n_categories=4, n_filters=8, n_layers=1)


def tiny_conv_vae() -> ConvVAE:
    return ConvVAE(latent_shape=(2, 8, 8), n_filters=8, n_layers=1)


def test_a_model_without_the_hooks_stops_the_fit_at_setup_naming_them(tmp_path):
    trainer = pl.Trainer(
        max_steps=1,
        callbacks=[Interpolations()],
        default_root_dir=tmp_path,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
    )
    model = Histogram(n_categories=100)
    with pytest.raises(MissingHooksError) as caught:
        trainer.fit(model, datamodule=WarmupDataModule())
    message = str(caught.value)
    assert "Interpolations" in message and "Histogram" in message and "LatentImageModel" in message
    assert "n_categories" not in message.split("lacks:")[1]  # Histogram has that one
    assert "posterior_mean" in message and "decode_to_pixels" in message
    assert trainer.global_step == 0  # stopped before the first step


def test_a_sample_that_does_not_take_the_callbacks_keywords_is_named():
    grid = SampleGrid(sample_kwargs={"decoder_noise": False})
    with pytest.raises(MissingHooksError, match=r"PixelCNN lacks: sample\(decoder_noise=\)"):
        grid.setup(None, tiny_pixelcnn(), "fit")
    grid.setup(None, tiny_conv_vae(), "fit")  # ConvVAE.sample takes decoder_noise
    with pytest.raises(MissingHooksError, match=r"VAESamples .* PixelCNN lacks: sample\(dec"):
        VAESamples().setup(None, tiny_pixelcnn(), "fit")
    VAESamples().setup(None, VAE2D(), "fit")


def test_missing_hooks_lists_each_absent_attribute_and_method():
    class Bare(torch.nn.Module):
        n_categories = 4

        def embed(self, x):
            return x

        def conditional_logits(self, x):  # one positional argument short
            return x

    assert missing_hooks(Bare(), MaskedImageModel) == [
        "image_shape",
        "n_classes",
        "receptive_radius",
        "hparams",
        "conditional_logits(2 positional arguments)",
    ]
    assert missing_hooks(tiny_pixelcnn(), MaskedImageModel) == []
    with pytest.raises(MissingHooksError, match="ReceptiveField needs .*MaskedImageModel; Bare"):
        ReceptiveField().setup(None, Bare(), "fit")


def test_the_protocols_are_runtime_checkable():
    vae, pixelcnn = tiny_conv_vae(), tiny_pixelcnn()
    assert isinstance(vae, LatentImageModel) and isinstance(vae, NoisySampler)
    assert not isinstance(pixelcnn, LatentImageModel)
    assert isinstance(pixelcnn, MaskedImageModel) and isinstance(pixelcnn, ImageSampler)
    assert isinstance(vae, PriorModel) and not isinstance(pixelcnn, PriorModel)


def test_fit_prior_needs_a_model_with_a_prior():
    with pytest.raises(MissingHooksError, match="FitPrior .* PixelCNN lacks: prior, posterior"):
        FitPrior().setup(None, tiny_pixelcnn(), "fit")
    FitPrior().setup(None, tiny_conv_vae(), "fit")


def build(spec: dict):
    """The object of a resolved ``{class_path, init_args}``, without training anything."""
    return train.import_object(spec["class_path"])(**(spec.get("init_args") or {}))


@pytest.mark.parametrize("name", CONFIGS)
def test_every_config_model_has_the_hooks_of_its_callbacks(name):
    config = train.resolved_config(str(CONFIG_ROOT / name))
    model = build(config["model"])
    checked = 0
    prior_fit = [config["prior_fit"]] if config.get("prior_fit") else []
    for spec in (config["trainer"]["callbacks"] or []) + prior_fit:
        callback = build(spec)
        if type(callback).setup is not pl.Callback.setup:  # a callback that checks its model
            callback.setup(None, model, "fit")
            checked += 1
    assert checked >= 1, f"{name}: no callback checks the model's hooks"
