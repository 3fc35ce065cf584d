"""Lightning callbacks that draw figures into ``<run>/figures/`` and W&B, and keep runs safe."""

from callbacks.category_bars import CategoryBars
from callbacks.density_2d import Density2D
from callbacks.ema import EMA
from callbacks.figures import evaluating, save_figure, should_draw
from callbacks.interpolations import Interpolations
from callbacks.latent_scatter import LatentScatter
from callbacks.loss_curves import LossCurves
from callbacks.receptive_field import ReceptiveField
from callbacks.reconstructions import Reconstructions
from callbacks.sample_grid import SampleGrid
from callbacks.stop_checkpoint import StopCheckpoint
from callbacks.vae_samples import VAESamples

__all__ = [
    "EMA",
    "CategoryBars",
    "Density2D",
    "Interpolations",
    "LatentScatter",
    "LossCurves",
    "ReceptiveField",
    "Reconstructions",
    "SampleGrid",
    "StopCheckpoint",
    "VAESamples",
    "evaluating",
    "save_figure",
    "should_draw",
]
