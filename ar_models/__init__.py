"""Autoregressive density models as LightningModules, all built on :class:`DensityModel`."""

from ar_models.base import DensityModel, ModelConfigError, NonFiniteLossError
from ar_models.histogram import Histogram

__all__ = ["DensityModel", "Histogram", "ModelConfigError", "NonFiniteLossError"]
