"""Slow end to end: a PixelVAE trained with the quick config's recipe uses its latent, the same
model trained on the plain ELBO does not, and the difference shows in what z decodes to.

    python -m pytest -m slow tests/vae_models/test_latent_use_trained.py

Both models are trained for the config's own epochs on the stand-in (with the recipe's input
dropout a shortened schedule does not yet read the digit from z). For each, the posterior means
z_a, z_b of test images a, b with different digits and colours are decoded with the same random
numbers: a model that ignores z draws nearly the same image twice, a model that uses z draws two
different ones. Along the used latent's interpolation rows the digit changes, and they start in
a's background colour and end in b's.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import yaml

from callbacks.interpolations import Interpolations
from datamodules.svhn import SVHNDataModule
from metrics.digits import digit_reader
from vae_models.pixel_vae import PixelVAE

pytestmark = pytest.mark.slow  # two PixelVAE trainings, minutes

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "hw3" / "pixelvae_quick.yaml"
EPOCHS = yaml.safe_load(CONFIG.read_text())["trainer"]["max_epochs"]
D = 3 * 32 * 32
#: Options of the recipe that a plain-ELBO model goes without.
PLAIN = {"aux_weight": 0.0, "free_bits": 0.0, "kl_warmup_steps": 0, "pixel_dropout": 0.0}


def train(options: dict, data: SVHNDataModule, root: Path) -> PixelVAE:
    pl.seed_everything(0, verbose=False)
    model = PixelVAE(**options)
    trainer = pl.Trainer(
        default_root_dir=root,
        max_epochs=EPOCHS,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(model, datamodule=data)
    trainer.test(model, datamodule=data, verbose=False)
    model.test_kl_nats = trainer.callback_metrics["test/kl_bpd"].item() * D * math.log(2)
    return model.eval()


def background(images: torch.Tensor) -> torch.Tensor:
    """The per-channel median of each image ``[B, 3]`` (its background colour)."""
    return images.flatten(2).median(dim=2).values.float()


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, PixelVAE]:
    config = yaml.safe_load(CONFIG.read_text())
    options = dict(config["model"]["init_args"])
    data = SVHNDataModule(batch_size=config["data"]["init_args"]["batch_size"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the stand-in warning
        data.setup()
    root = tmp_path_factory.mktemp("runs")
    return {
        "recipe": train(options, data, root / "recipe"),
        "plain": train({**options, **PLAIN}, data, root / "plain"),
    }


@pytest.fixture(scope="module")
def pairs() -> tuple[torch.Tensor, torch.Tensor]:
    """Test images a[i], b[i] of different digits (20 pairs)."""
    data = SVHNDataModule()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data.setup()
    x, y = next(iter(data.test_dataloader()))
    a_index = torch.arange(0, 20)
    b_index = torch.tensor([next(j for j in range(20, 100) if y[j] != y[i]) for i in a_index])
    return x[a_index], x[b_index]


@pytest.fixture(scope="module")
def interpolation_ends(models, pairs) -> tuple[torch.Tensor, torch.Tensor]:
    """The recipe model's interpolation rows for the first 10 pairs, decoded at t = 0 and 1."""
    a, b = pairs
    rows = Interpolations(n_pairs=10, n_steps=8).interpolate(
        models["recipe"], torch.stack([a, b], 1)[:10].flatten(0, 1)
    )
    return rows[:, 1], rows[:, -2]


def test_pairs(models, pairs) -> None:
    recipe, plain = models["recipe"], models["plain"]
    assert recipe.test_kl_nats >= 10.0 and plain.test_kl_nats < 5.0
    a, b = pairs
    differences = {}
    for name, model in models.items():
        with torch.no_grad():
            z_a, z_b = model.posterior_mean(a), model.posterior_mean(b)
            draw_a = model.decode_to_pixels(z_a, generator=torch.Generator().manual_seed(1))
            draw_b = model.decode_to_pixels(z_b, generator=torch.Generator().manual_seed(1))
        differences[name] = (draw_a - draw_b).abs().float().mean().item()
    # grey levels: the two images of a pair differ by ~60 levels per value
    assert differences["recipe"] > 20.0, differences
    assert differences["recipe"] > 4 * differences["plain"], differences


def test_interpolation_changes_the_digit(interpolation_ends) -> None:
    first, last = interpolation_ends
    reader = digit_reader()
    start, end = reader.read(first, 256).labels, reader.read(last, 256).labels
    assert (start != end).float().mean() >= 0.5  # the digit changes along most paths


def test_interpolation_starts_and_ends_in_the_endpoints_colours(pairs, interpolation_ends) -> None:
    a, b = pairs
    first, last = interpolation_ends
    colour_error = (background(first) - background(a[:10])).abs().mean().item()
    crossed_error = (background(first) - background(b[:10])).abs().mean().item()
    assert colour_error < 0.5 * crossed_error, (colour_error, crossed_error)
    assert (background(last) - background(b[:10])).abs().mean() < 0.5 * crossed_error
