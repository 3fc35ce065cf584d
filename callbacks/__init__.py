"""Lightning callbacks that draw figures into ``<run>/figures/`` and W&B."""

from callbacks.category_bars import CategoryBars
from callbacks.figures import evaluating, save_figure, should_draw
from callbacks.loss_curves import LossCurves

__all__ = ["CategoryBars", "LossCurves", "evaluating", "save_figure", "should_draw"]
