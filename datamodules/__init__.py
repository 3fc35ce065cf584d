"""LightningDataModules for the homework data sets (seeded, reproducible splits)."""

from ar_models.errors import DataError
from datamodules.base import ArrayDataModule, Split
from datamodules.colored_mnist import ColoredMNISTDataModule
from datamodules.svhn import SVHNDataModule
from datamodules.toy2d import Toy2DDataModule
from datamodules.two_d import Distribution2DDataModule
from datamodules.warmup import WarmupDataModule

__all__ = [
    "ArrayDataModule",
    "ColoredMNISTDataModule",
    "DataError",
    "Distribution2DDataModule",
    "SVHNDataModule",
    "Split",
    "Toy2DDataModule",
    "WarmupDataModule",
]
