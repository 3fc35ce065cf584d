"""LightningDataModules for the homework data sets (seeded, reproducible splits)."""

from datamodules.base import ArrayDataModule, DataError, Split
from datamodules.warmup import WarmupDataModule

__all__ = ["ArrayDataModule", "DataError", "Split", "WarmupDataModule"]
