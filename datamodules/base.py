"""Shared DataModule machinery: in-memory arrays, the 80/20 split and a seeded validation split.

Every DataModule here holds its whole data set as tensors. A subclass implements
:meth:`ArrayDataModule.load` returning the train and test parts (the source's own split, or the
first 80% / last 20% of data without one, see :func:`split_first_last`); this base carves a
validation set from train with a seeded permutation and serves batches that are ``x`` or
``(x, y)`` where the data has labels (coloured MNIST, SVHN and its stand-in, HW3 dataset 3).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytorch_lightning as pl
import torch
import torch.distributed as dist
from pytorch_lightning.utilities import rank_zero_only
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from ar_models.errors import DataError, check

log = logging.getLogger("datamodules")


@rank_zero_only
def announce(message: str) -> None:
    """Say ``message`` in one line on stderr, on rank zero only: a WARNING record of the
    ``datamodules`` logger (without a logging configuration Python prints it bare)."""
    log.warning(message)


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


class EpochSampler(DistributedSampler):
    """Example indices of one epoch, a pure function of ``(seed, epoch, rank)``.

    Shuffled: a permutation from ``torch.Generator().manual_seed(seed + epoch)``; else in order.
    With ``world > 1`` ranks: rank r takes positions r, r + world, ... of that order, so the ranks'
    shares are disjoint. ``even=True`` (training) first drops the last ``n mod world`` positions so
    every rank runs the same number of steps; ``even=False`` (evaluation) drops and repeats nothing,
    so every example is evaluated exactly once (Lightning's default sampler pads by repeating).
    ``skip`` positions are left out of the next iteration only (resuming a half-finished epoch).
    It subclasses ``DistributedSampler`` so that Lightning keeps it rather than replacing it.
    """

    def __init__(
        self, n: int, shuffle: bool, seed: int, rank: int = 0, world: int = 1, even: bool = True
    ) -> None:
        super().__init__(
            range(n), num_replicas=world, rank=rank, shuffle=shuffle, seed=seed, drop_last=even
        )
        self.n, self.world, self.even = n, world, even
        self.skip = 0

    def order(self) -> Tensor:
        """This rank's indices for the current epoch (before ``skip``)."""
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.n, generator=generator)
        else:
            order = torch.arange(self.n)
        if self.even:
            order = order[: self.n - self.n % self.world]
        return order[self.rank :: self.world]

    def __iter__(self) -> Iterator[int]:
        order = self.order()[self.skip :]
        self.skip = 0
        return iter(order.tolist())

    def __len__(self) -> int:
        usable = self.n - self.n % self.world if self.even else self.n
        return len(range(self.rank, usable, self.world))


class ResumableDataLoader(DataLoader):
    """A DataLoader over an :class:`EpochSampler` that Lightning can checkpoint mid-epoch.

    ``state_dict`` records the epoch and the batches already served; after ``load_state_dict``
    the next iteration serves only the rest of that epoch, in the same order, so a resumed run
    sees exactly the batches an uninterrupted one would.
    """

    def __init__(self, dataset: Dataset, sampler: EpochSampler, **kwargs: Any) -> None:
        super().__init__(dataset, sampler=sampler, **kwargs)
        self.batches_served = 0

    def __iter__(self) -> Iterator[Any]:
        self.batches_served = self.sampler.skip // self.batch_size
        for batch in super().__iter__():
            self.batches_served += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.sampler.epoch, "batches_served": self.batches_served}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.sampler.set_epoch(state["epoch"])
        served = state["batches_served"]
        self.sampler.skip = served * self.batch_size if served < len(self) else 0
        self.batches_served = served  # what state_dict says until the next iteration starts


class LongImages(SplitDataset):
    """Serves a split stored compactly (e.g. uint8 images) as int64, ``x[i]`` or ``(x[i], y[i])``
    (a DataModule returns it from ``make_dataset``)."""

    def __getitem__(self, i: int) -> Tensor | tuple[Tensor, Tensor]:
        x = self.split.x[i].long()
        return x if self.split.y is None else (x, self.split.y[i])


def value_range(*parts: Tensor) -> tuple[int, int] | None:
    """The smallest and the largest value of integer tensors (None if any part is real-valued or
    all are empty)."""
    if any(part.dtype.is_floating_point or part.dtype.is_complex for part in parts):
        return None
    extremes = [torch.aminmax(part) for part in parts if part.numel()]
    if not extremes:
        return None
    return int(min(e.min for e in extremes)), int(max(e.max for e in extremes))


def split_first_last(split: Split, train_fraction: float = 0.8) -> tuple[Split, Split]:
    """The handout's split: the first ``train_fraction`` of the examples train, the rest test."""
    n_train = int(round(len(split) * train_fraction))
    index = torch.arange(len(split))
    return split.subset(index[:n_train]), split.subset(index[n_train:])


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
        check(DataError, batch_size=batch_size, integer=True, minimum=1)
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
        self._train_loader: ResumableDataLoader | None = None
        #: (min, max) of the integer examples of all splits, computed once in ``setup``; None for
        #: real-valued data. Set on every loader (``loader.value_range``): models do not check
        #: the values of these batches again (``ar_models.base.DensityModel.batches_within``).
        #: A subclass whose ``make_dataset`` serves other values than it stores sets it itself.
        self.value_range: tuple[int, int] | None = None
        self._restored_train_position: dict[str, int] | None = None

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
        self.value_range = value_range(train_full.x, test.x)

    def make_dataset(self, split: Split) -> Dataset:
        """The Dataset served for a split (override to change how examples are served)."""
        return SplitDataset(split)

    def _rank_and_world(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        if trainer is not None:
            return trainer.global_rank, trainer.world_size
        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
        return 0, 1

    def _loader(self, split: Split | None, train: bool) -> DataLoader:
        """Training: shuffled per epoch, equal disjoint rank shares, resumable mid-epoch.
        Evaluation: in order, each example on exactly one rank, exactly once."""
        if split is None:
            raise RuntimeError("call setup() before asking for a dataloader")
        rank, world = self._rank_and_world()
        sampler = EpochSampler(
            len(split), shuffle=train, seed=self.seed, rank=rank, world=world, even=train
        )
        loader_class = ResumableDataLoader if train else DataLoader
        loader = loader_class(
            self.make_dataset(split),
            sampler=sampler,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )
        loader.value_range = self.value_range  # models skip their per-batch value checks
        return loader

    def train_dataloader(self) -> DataLoader:
        loader = self._loader(self.train, train=True)
        assert isinstance(loader, ResumableDataLoader)
        if self._restored_train_position is not None:
            loader.load_state_dict(self._restored_train_position)
            self._restored_train_position = None
        self._train_loader = loader
        return loader

    # The training loader's position is also kept in the data module's checkpoint state: Lightning
    # restores it into the loader only when it builds the loader after restoring its loops, and a
    # model whose configure_optimizers reads trainer.estimated_stepping_batches makes it build the
    # loader (and draw a first batch) before; a resumed run would then repeat the first batches of
    # the interrupted epoch. The data module's own state is restored before either happens.
    def state_dict(self) -> dict[str, Any]:
        """``{"train_position": {"epoch", "batches_served"}}`` of the current training loader."""
        if self._train_loader is None:
            return {}
        return {"train_position": self._train_loader.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """The next training loader starts at the saved position (see :meth:`state_dict`)."""
        self._restored_train_position = state_dict.get("train_position")

    def teardown(self, stage: str) -> None:
        self._restored_train_position = None  # restored by test/validate: not for a later fit

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val, train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test, train=False)
