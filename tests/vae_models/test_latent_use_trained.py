"""Slow end to end: a PixelVAE trained with the quick config's recipe uses its latent, the same
model trained on the plain ELBO does not, and the difference shows in what z decodes to.

    python -m pytest -m slow tests/vae_models/test_latent_use_trained.py

Both models are trained for ``EPOCHS`` epochs on the stand-in (the config's own schedule,
shortened). For each, the posterior means z_a, z_b of test images a, b with different digits and
colours are decoded with the same random numbers: a model that ignores z draws nearly the same
image twice, a model that uses z draws two different ones. The interpolation rows of the used
latent start in a's colours and end in b's.
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
EPOCHS = 6
D = 3 * 32 * 32
#: Options of the recipe that a plain-ELBO model goes without.
PLAIN = {"aux_weight": 0.0, "free_bits": 0.0, "kl_warmup_steps": 0}


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


def test_pairs(models) -> None:
    recipe, plain = models["recipe"], models["plain"]
    assert recipe.test_kl_nats >= 10.0 and plain.test_kl_nats < 5.0
    data = SVHNDataModule()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data.setup()
    x, y = next(iter(data.test_dataloader()))
    # pairs (a, b) of different digits
    a_index = torch.arange(0, 20)
    b_index = torch.tensor([next(j for j in range(20, 100) if y[j] != y[i]) for i in a_index])
    a, b = x[a_index], x[b_index]
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

    rows = Interpolations(n_pairs=10, n_steps=8).interpolate(
        recipe, torch.stack([a, b], 1)[:10].flatten(0, 1)
    )
    first, last = rows[:, 1], rows[:, -2]  # decoded at t = 0 and t = 1
    colour_error = (background(first) - background(a[:10])).abs().mean().item()
    crossed_error = (background(first) - background(b[:10])).abs().mean().item()
    assert colour_error < 0.5 * crossed_error, (colour_error, crossed_error)
    assert (background(last) - background(b[:10])).abs().mean() < 0.5 * crossed_error
    reader = digit_reader()
    start, end = reader.read(first, 256).labels, reader.read(last, 256).labels
    assert (start != end).float().mean() >= 0.5  # the digit changes along most paths
