"""Every figure of the callbacks names the model class in its title ("TinyModel: ..."), and the
receptive-field figure says what its shades mean.

The callbacks draw from a stub that has every hook they call (no model of the library is built,
so the figures are drawn in milliseconds whatever the models' arguments are)."""

from __future__ import annotations

import importlib
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

import callbacks
from callbacks.receptive_field import MAGNITUDE_LABEL, SHADES, add_key


class TinyModel(nn.Module):
    """Every hook the figure callbacks call, on 1×4×4 images with 4 levels and 2 classes."""

    n_categories = 4
    n_classes = 2
    extra_terms = ()
    image_shape = (1, 4, 4)
    receptive_radius = 1

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def sample(self, n: int, y: Tensor | None = None, **kwargs) -> Tensor:
        return torch.randint(0, 4, (n, *self.image_shape))

    def posterior_mean(self, x: Tensor) -> Tensor:
        return x.float().flatten(1)[:, :2]

    def decode_to_pixels(self, z: Tensor) -> Tensor:
        return torch.zeros(len(z), *self.image_shape, dtype=torch.long)


@pytest.fixture
def drawn(tmp_path, monkeypatch):
    """A trainer stub, and the list of (callback module, figure) that ``save_figure`` received."""
    figures: list[tuple[str, Figure]] = []
    for name in set(callbacks.EXPORTS.values()) | {"callbacks.loss_curves"}:
        module = importlib.import_module(name)
        if hasattr(module, "save_figure"):

            def record(trainer, fig, figure_name, step=None, module=name):
                figures.append((module, fig))

            monkeypatch.setattr(module, "save_figure", record)
    images = torch.randint(0, 4, (8, 1, 4, 4))
    trainer = SimpleNamespace(
        is_global_zero=True,
        sanity_checking=False,
        fast_dev_run=False,
        testing=False,
        global_step=5,
        current_epoch=0,
        max_epochs=1,
        loggers=[],
        default_root_dir=str(tmp_path),
        lightning_module=TinyModel(),
        datamodule=SimpleNamespace(digit_domain=None, test_dataloader=lambda: [images]),
    )
    return trainer, figures


def texts(fig: Figure) -> list[str]:
    """The figure's title and its panels' titles."""
    suptitle = fig._suptitle.get_text() if fig._suptitle is not None else ""
    return [suptitle, *(ax.get_title() for ax in fig.axes)]


def draw_each(trainer) -> None:
    """Draw every figure callback once, from the stub."""
    model = trainer.lightning_module
    k = 5
    callbacks.CategoryBars(n_samples=10).draw(
        trainer, np.ones(k) / k, np.ones(k) / k, np.ones(k) / k
    )
    callbacks.Density2D(n_samples=10).plot(trainer, [np.eye(k)] * 3, "true density", "H(p)", None)
    callbacks.SampleGrid(n_samples=4, n_rows=2).draw(trainer, model, title="end of training")
    callbacks.ClassConditionalGrid(n_per_class=2).draw(trainer, model, title="tested weights")
    points = np.random.default_rng(0).normal(size=(20, 2))
    callbacks.VAESamples(n_samples=20, n_data=0).plot(trainer, points, points, None)
    callbacks.LatentScatter(n_points=20).plot(trainer, points, None, np.array([0.5, 0.1]), 2)
    callbacks.Interpolations(n_pairs=2, n_steps=3).draw(trainer, model)
    callbacks.Reconstructions(n_images=4, n_per_row=2).draw(trainer, model)
    curves = callbacks.LossCurves()
    curves.history = {"train/bpd": [(i, 3.0 + 1 / (i + 1)) for i in range(10)]}
    curves.draw(trainer)
    field = callbacks.ReceptiveField(target=(2, 2, 0))
    field.draw(trainer, np.arange(16, dtype=float).reshape(4, 4) % 3, radius=1)
    quality = callbacks.SampleQualityMonitor(n_samples=10)
    quality.history = [{"step": 5, "epoch": 0, "recognised": 0.5, "label_entropy": 2.0}]
    quality.draw(trainer, model)


def test_every_figure_title_names_the_model_class(drawn):
    trainer, figures = drawn
    draw_each(trainer)
    drawn_by = {module for module, _ in figures}
    wanted = {
        "callbacks.category_bars",
        "callbacks.density_2d",
        "callbacks.sample_grid",
        "callbacks.class_grid",
        "callbacks.vae_samples",
        "callbacks.latent_scatter",
        "callbacks.interpolations",
        "callbacks.reconstructions",
        "callbacks.loss_curves",
        "callbacks.receptive_field",
        "callbacks.sample_quality",
    }
    assert drawn_by == wanted
    for module, fig in figures:
        assert any(t.startswith("TinyModel: ") for t in texts(fig)), (module, texts(fig))


def test_the_receptive_field_figure_has_a_key_to_its_shades(drawn):
    trainer, figures = drawn
    callbacks.ReceptiveField(target=(2, 2, 0)).draw(trainer, np.eye(4), radius=1)
    (_, fig), *_ = figures
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    assert len(legends) == 1
    labels = [t.get_text() for t in legends[0].get_texts()]
    assert labels[:2] == list(SHADES.values())
    assert "target" in labels and any(t.startswith("nominal receptive field") for t in labels)
    colour_bars = [ax for ax in fig.axes if ax.get_ylabel() == MAGNITUDE_LABEL]
    assert len(colour_bars) == 1  # the left panel's grey scale


def test_the_key_lists_the_shades_before_the_outlines():
    """``add_key``, which the comparison figure of several models uses too."""
    fig = Figure()
    ax = fig.subplots()
    ax.plot([0], [0], label="target")
    add_key(ax)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == [*SHADES.values(), "target"]
