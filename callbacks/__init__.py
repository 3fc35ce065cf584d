"""Lightning callbacks that draw figures into ``<run>/figures/`` and W&B, and keep runs safe.

The names below are imported on first use (``callbacks.SampleGrid``, ``from callbacks import
EMA``), so that the command line's help and usage errors need no torch; a new export is one entry
of ``EXPORTS``.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

#: exported name -> the module that defines it
EXPORTS = {
    "CategoryBars": "callbacks.category_bars",
    "ClassConditionalGrid": "callbacks.class_grid",
    "Density2D": "callbacks.density_2d",
    "EMA": "callbacks.ema",
    "FitPrior": "callbacks.prior_fit",
    "Interpolations": "callbacks.interpolations",
    "LatentScatter": "callbacks.latent_scatter",
    "LossCurves": "callbacks.loss_curves",
    "ReceptiveField": "callbacks.receptive_field",
    "Reconstructions": "callbacks.reconstructions",
    "SampleGrid": "callbacks.sample_grid",
    "SampleQualityMonitor": "callbacks.sample_quality",
    "StepSeed": "callbacks.step_seed",
    "StopCheckpoint": "callbacks.stop_checkpoint",
    "TimedCheckpoint": "callbacks.timed_checkpoint",
    "VAESamples": "callbacks.vae_samples",
    "evaluating": "callbacks.figures",
    "save_figure": "callbacks.figures",
    "should_draw": "callbacks.figures",
}

__all__ = sorted(EXPORTS)


def __getattr__(name: str) -> Any:
    """Import an exported name's module (or a submodule, ``callbacks.hooks``) on first use."""
    if name in EXPORTS:
        value = getattr(importlib.import_module(EXPORTS[name]), name)
    elif not name.startswith("_") and importlib.util.find_spec(f"callbacks.{name}") is not None:
        value = importlib.import_module(f"callbacks.{name}")
    else:
        raise AttributeError(f"module 'callbacks' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *EXPORTS})


def import_all() -> None:
    """Import every exported callback (the command line lists them as ``trainer.callbacks``)."""
    for name in EXPORTS:
        __getattr__(name)
