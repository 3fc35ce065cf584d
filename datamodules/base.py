"""Shared DataModule machinery: in-memory arrays, the 80/20 split and a seeded validation split.

Every DataModule here holds its whole data set as tensors. A subclass implements
:meth:`ArrayDataModule.load` returning the train and test parts (the source's own split, or the
first 80% / last 20% of data without one, see :func:`split_first_last`); this base carves a
validation set from train with a seeded permutation and serves batches that are ``x`` or
``(x, y)`` where the data has labels (DESIGN.md, Batches).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset


class DataError(ValueError):
    """Bad data or data arguments; the message names the input and what was expected."""


@dataclass
class Split:
    """One part of a data set: examples ``x`` and optional labels ``y`` (same length)."""

    x: Tensor
    y: Tensor | None = None

    def __len__(self) -> int:
        return len(self.x)

    def subset(self, index: Tensor) -> Split:
        return Split(self.x[index], None if self.y is None else self.y[index])


class SplitDataset(Dataset):
    """Serves ``x[i]``, or ``(x[i], y[i])`` when the split has labels."""

    def __init__(self, split: Split) -> None:
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> Tensor | tuple[Tensor, Tensor]:
        if self.split.y is None:
            return self.split.x[i]
        return self.split.x[i], self.split.y[i]


def split_first_last(split: Split, train_fraction: float = 0.8) -> tuple[Split, Split]:
    """The handout's split: the first ``train_fraction`` of the examples train, the rest test."""
    n_train = int(round(len(split) * train_fraction))
    index = torch.arange(len(split))
    return split.subset(index[:n_train]), split.subset(index[n_train:])


def check_positive_int(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise DataError(f"{name} must be a positive integer, got {value!r}")


class ArrayDataModule(pl.LightningDataModule):
    """Base DataModule: train/val/test splits of in-memory tensors.

    Args:
        batch_size: examples per batch (all three loaders).
        val_fraction: fraction of the train part held out for validation, in (0, 1).
        seed: seed of the validation split (and of any sampling the subclass does).
        num_workers: DataLoader worker processes.
    """

    def __init__(
        self,
        batch_size: int = 128,
        val_fraction: float = 0.1,
        seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        check_positive_int("batch_size", batch_size)
        if not 0.0 < val_fraction < 1.0:
            raise DataError(
                f"val_fraction must be in the open interval (0, 1), got {val_fraction!r}"
            )
        if num_workers < 0:
            raise DataError(f"num_workers must be >= 0, got {num_workers!r}")
        self.batch_size = batch_size
        self.val_fraction = val_fraction
        self.seed = seed
        self.num_workers = num_workers
        self.train: Split | None = None
        self.val: Split | None = None
        self.test: Split | None = None

    def load(self) -> tuple[Split, Split]:
        """Return the (train, test) parts of the data set, before the validation split."""
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.train is not None:
            return
        train_full, test = self.load()
        n_val = int(round(len(train_full) * self.val_fraction))
        if n_val < 1 or n_val >= len(train_full):
            raise DataError(
                f"val_fraction={self.val_fraction} of {len(train_full)} training examples leaves "
                f"{n_val} for validation and {len(train_full) - n_val} for training; "
                "both must be >= 1"
            )
        generator = torch.Generator().manual_seed(self.seed)
        perm = torch.randperm(len(train_full), generator=generator)
        self.val = train_full.subset(perm[:n_val].sort().values)
        self.train = train_full.subset(perm[n_val:].sort().values)
        self.test = test

    def _loader(self, split: Split | None, shuffle: bool) -> DataLoader:
        if split is None:
            raise RuntimeError("call setup() before asking for a dataloader")
        return DataLoader(
            SplitDataset(split),
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test, shuffle=False)
