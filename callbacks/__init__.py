"""Lightning callbacks that draw figures into ``<run>/figures/`` and W&B, and keep runs safe."""

from callbacks.category_bars import CategoryBars
from callbacks.class_grid import ClassConditionalGrid
from callbacks.density_2d import Density2D
from callbacks.ema import EMA
from callbacks.figures import evaluating, save_figure, should_draw
from callbacks.interpolations import Interpolations
from callbacks.latent_scatter import LatentScatter
from callbacks.loss_curves import LossCurves
from callbacks.receptive_field import ReceptiveField
from callbacks.reconstructions import Reconstructions
from callbacks.sample_grid import SampleGrid
from callbacks.step_seed import StepSeed
from callbacks.stop_checkpoint import StopCheckpoint
from callbacks.timed_checkpoint import TimedCheckpoint
from callbacks.vae_samples import VAESamples

__all__ = [
    "EMA",
    "CategoryBars",
    "ClassConditionalGrid",
    "Density2D",
    "Interpolations",
    "LatentScatter",
    "LossCurves",
    "ReceptiveField",
    "Reconstructions",
    "SampleGrid",
    "StepSeed",
    "StopCheckpoint",
    "TimedCheckpoint",
    "VAESamples",
    "evaluating",
    "save_figure",
    "should_draw",
]
