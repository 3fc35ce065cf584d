"""Checkpoint writes are atomic: a failed write keeps the previous file, leaves no temporary file,
and temporary files of dead writers are removed; Lightning's default IO is replaced, a user's own
IO is kept."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.plugins import TorchCheckpointIO

from callbacks.atomic_checkpoint_io import (
    TEMP_PREFIX,
    TEMP_SUFFIX,
    AtomicCheckpointIO,
    remove_stale_temporaries,
    use_atomic_checkpoint_io,
)


def test_write_is_complete_and_leaves_nothing_else(tmp_path):
    target = tmp_path / "sub" / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.arange(5)}}, target)
    assert torch.equal(torch.load(target)["state_dict"]["w"], torch.arange(5))
    assert [p.name for p in target.parent.iterdir()] == ["last.ckpt"]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # like any new file, not 0o600


class FailingIO(AtomicCheckpointIO):
    """Writes half of the data, then fails as a full disk would."""

    def write(self, checkpoint, file) -> None:
        file.write(b"\x80\x02half a checkpoint")
        raise OSError(28, "No space left on device")


def test_failed_write_keeps_the_previous_file(tmp_path):
    target = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"step": 1}, target)
    with pytest.raises(OSError, match="No space"):
        FailingIO().save_checkpoint({"step": 2}, target)
    assert torch.load(target) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_temporary_files_of_dead_writers_are_removed_at_the_next_write(tmp_path):
    dead = tmp_path / f"{TEMP_PREFIX}{dead_pid()}-abcd{TEMP_SUFFIX}"
    alive = tmp_path / f"{TEMP_PREFIX}{os.getppid()}-abcd{TEMP_SUFFIX}"  # a running process
    unrelated = tmp_path / f"{TEMP_PREFIX}notapid{TEMP_SUFFIX}"
    for path in (dead, alive, unrelated):
        path.write_bytes(b"partial")
    AtomicCheckpointIO().save_checkpoint({"step": 1}, tmp_path / "last.ckpt")
    assert not dead.exists() and alive.exists() and unrelated.exists()
    assert remove_stale_temporaries(tmp_path) == []


def test_temporary_names_never_look_like_a_last_checkpoint(tmp_path, monkeypatch):
    """Lightning's ckpt_path="last" considers every file whose name contains "last"."""
    seen = []

    class Spy(AtomicCheckpointIO):
        def write(self, checkpoint, file) -> None:
            seen.extend(p.name for p in tmp_path.iterdir())
            super().write(checkpoint, file)

    Spy().save_checkpoint({"step": 1}, tmp_path / "last.ckpt")
    assert len(seen) == 1 and "last" not in seen[0] and seen[0].startswith(TEMP_PREFIX)


class OwnIO(TorchCheckpointIO):
    pass


def test_default_io_is_replaced_and_a_users_own_is_kept():
    trainer = pl.Trainer(logger=False, enable_progress_bar=False)
    assert type(trainer.strategy.checkpoint_io) is TorchCheckpointIO
    assert use_atomic_checkpoint_io(trainer)
    assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)
    own = pl.Trainer(logger=False, enable_progress_bar=False, plugins=[OwnIO()])
    assert not use_atomic_checkpoint_io(own)
    assert type(own.strategy.checkpoint_io) is OwnIO
