"""Random numbers of a training step that do not depend on where the run was resumed.

A model that draws random numbers while training (a VAE's reparameterisation noise, dropout) draws
them from torch's global generator, whose state a Lightning checkpoint does not hold: a run resumed
from a checkpoint would continue with other numbers than the uninterrupted run, and between two
steps Lightning itself draws from it (every new DataLoader iterator takes a seed from it), so even a
saved state could not simply be put back.

:class:`StepSeed` seeds the global generators (torch on the CPU, CUDA and MPS, numpy's legacy
global state, Python's ``random``) before every training batch with a seed that is a function of
the run's base seed, the epoch, the batch index in the epoch and the process rank only. Everything
random in that batch's step, and in what runs after it until the next batch (validation, figures),
is then the same in a resumed run as in an uninterrupted one. The base seed is drawn once from
torch's generator at the first training batch (so it follows ``seed_everything``; rank zero's with
several processes) and stored in the checkpoint.

Random numbers drawn while the data loader fetches a batch are the data module's concern (this
library's samplers use their own seeded generators).
"""

from __future__ import annotations

import hashlib
import random
import struct
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch

_MASK64 = (1 << 64) - 1
_MPS = torch.backends.mps.is_available()


def step_seed(base_seed: int, epoch: int, batch_idx: int, rank: int) -> int:
    """A 64-bit seed, a fixed hash (BLAKE2b) of the four numbers."""
    packed = struct.pack("<4Q", *(value & _MASK64 for value in (base_seed, epoch, batch_idx, rank)))
    return int.from_bytes(hashlib.blake2b(packed, digest_size=8).digest(), "little")


def seed_all(seed: int) -> None:
    """Seed torch's CPU generator and those of the CUDA devices (once CUDA is initialised) and of
    MPS (where available), numpy's global state and Python's ``random``.

    (``torch.manual_seed`` does the same for torch but also queues lazy seeds for every backend on
    each call: about 0.4 ms, a tenth of a small model's training step.)"""
    torch.default_generator.manual_seed(seed)
    if torch.cuda.is_initialized():
        torch.cuda.manual_seed_all(seed)
    if _MPS:
        torch.mps.manual_seed(seed)
    np.random.seed(seed & 0xFFFF_FFFF)
    random.seed(seed)


class StepSeed(pl.Callback):
    """Seed the global generators before every training batch (module docstring)."""

    def __init__(self) -> None:
        self.base_seed: int | None = None

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self.base_seed is None:
            drawn = int(torch.randint(0, 2**62, (1,)).item())
            if trainer.world_size > 1:
                drawn = trainer.strategy.broadcast(drawn, src=0)
            self.base_seed = drawn
        seed_all(step_seed(self.base_seed, trainer.current_epoch, batch_idx, trainer.global_rank))

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit":
            self.base_seed = None  # a later fit with this callback draws its own

    def state_dict(self) -> dict[str, Any]:
        return {"base_seed": self.base_seed}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.base_seed = state_dict.get("base_seed")
