"""Autoregressive density models as LightningModules, all built on :class:`DensityModel`."""

from ar_models.ar_mlp import ARMLP
from ar_models.base import DensityModel
from ar_models.errors import ModelConfigError, NonFiniteLossError
from ar_models.gated_pixelcnn import GatedPixelCNN
from ar_models.histogram import Histogram
from ar_models.made import MADE, MADENet
from ar_models.masked_conv import MaskedConv2d
from ar_models.pixelcnn import PixelCNN

__all__ = [
    "ARMLP",
    "MADE",
    "DensityModel",
    "GatedPixelCNN",
    "Histogram",
    "MADENet",
    "MaskedConv2d",
    "ModelConfigError",
    "NonFiniteLossError",
    "PixelCNN",
]
