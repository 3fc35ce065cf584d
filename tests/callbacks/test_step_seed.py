"""StepSeed: a run stopped mid-epoch and resumed draws the same random numbers as an uninterrupted
one (and without it, it does not); StopCheckpoint's stop in the first epoch resumes exactly."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint

from ar_models import Histogram
from callbacks.step_seed import StepSeed, step_seed
from callbacks.stop_checkpoint import StopCheckpoint
from datamodules import WarmupDataModule


class NoisyHistogram(Histogram):
    """A histogram trained through noisy logits: every step draws random numbers."""

    def nll(self, x: torch.Tensor) -> torch.Tensor:
        noisy = self.logits + 0.5 * torch.randn_like(self.logits) if self.training else self.logits
        return -torch.log_softmax(noisy, dim=0)[x]


def fit(root, seeded: bool, max_steps: int = -1, ckpt_path: str | None = None) -> pl.Trainer:
    pl.seed_everything(0)
    callbacks = [StopCheckpoint(), ModelCheckpoint(dirpath=root / "checkpoints", save_last=True)]
    trainer = pl.Trainer(
        max_epochs=3,
        max_steps=max_steps,
        default_root_dir=root,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks + ([StepSeed()] if seeded else []),
    )
    model = NoisyHistogram(lr=0.05)
    trainer.fit(model, datamodule=WarmupDataModule(batch_size=512), ckpt_path=ckpt_path)
    return trainer


def logits_after(root) -> torch.Tensor:
    return torch.load(root / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"][
        "logits"
    ]


def test_resumed_mid_epoch_in_the_first_epoch_equals_uninterrupted(tmp_path):
    """15 batches per epoch; stopped after 7 (before ModelCheckpoint ever saved), resumed."""
    fit(tmp_path / "full", seeded=True)
    stopped = fit(tmp_path / "split", seeded=True, max_steps=7)
    assert stopped.global_step == 7
    saved = torch.load(tmp_path / "split/checkpoints/last.ckpt", weights_only=False)
    assert saved["global_step"] == 7  # the stop's checkpoint, not an end-of-training rewrite
    fit(tmp_path / "split", seeded=True, ckpt_path=str(tmp_path / "split/checkpoints/last.ckpt"))
    assert torch.equal(logits_after(tmp_path / "full"), logits_after(tmp_path / "split"))
    assert [p.name for p in (tmp_path / "split/checkpoints").glob("last*")] == ["last.ckpt"]


def test_without_step_seeds_the_resumed_run_draws_other_numbers(tmp_path):
    """The same stop and resume without StepSeed: the noise after the resume differs."""
    fit(tmp_path / "full", seeded=False)
    fit(tmp_path / "split", seeded=False, max_steps=22)  # mid-way through the second epoch
    fit(tmp_path / "split", seeded=False, ckpt_path=str(tmp_path / "split/checkpoints/last.ckpt"))
    assert not torch.equal(logits_after(tmp_path / "full"), logits_after(tmp_path / "split"))


def test_resumed_mid_second_epoch_equals_uninterrupted(tmp_path):
    fit(tmp_path / "full", seeded=True)
    fit(tmp_path / "split", seeded=True, max_steps=22)
    fit(tmp_path / "split", seeded=True, ckpt_path=str(tmp_path / "split/checkpoints/last.ckpt"))
    assert torch.equal(logits_after(tmp_path / "full"), logits_after(tmp_path / "split"))


def test_seeds_depend_on_every_argument_and_nothing_else():
    seeds = {step_seed(b, e, i, r) for b in (0, 1) for e in (0, 1) for i in (0, 1) for r in (0, 1)}
    assert len(seeds) == 16
    assert step_seed(5, 2, 3, 0) == step_seed(5, 2, 3, 0)
    assert all(0 <= s < 2**64 for s in seeds)


def test_seed_all_seeds_torch_numpy_and_random_like_their_own_seed_functions():
    import random

    import numpy as np

    from callbacks.step_seed import seed_all

    seed = step_seed(7, 1, 2, 0)
    seed_all(seed)
    drawn = (torch.rand(4), np.random.rand(4), random.random())
    torch.manual_seed(seed)
    np.random.seed(seed & 0xFFFF_FFFF)
    random.seed(seed)
    assert torch.equal(drawn[0], torch.rand(4))
    assert np.array_equal(drawn[1], np.random.rand(4)) and drawn[2] == random.random()
