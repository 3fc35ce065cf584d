"""Checkpoint files that are either complete or absent, whenever the process dies.

Lightning's :class:`~pytorch_lightning.plugins.TorchCheckpointIO` serialises the checkpoint into
memory, writes it to a temporary file of the system's temporary folder (``$TMPDIR``) and moves it
onto the target. That move is an atomic rename only when ``$TMPDIR`` and the run folder share a
file system; otherwise (a local ``/tmp`` and a network run folder, as on many GPU clusters) it is a
copy onto the target, and a kill during the copy leaves a truncated checkpoint. Killed writes also
leave their temporary files in ``$TMPDIR``, and nothing is flushed to disk before the rename.

:class:`AtomicCheckpointIO` writes into a temporary file in the checkpoint's own folder, flushes it
to disk (``fsync``), renames it onto the target (``os.replace``, atomic on POSIX and Windows) and
flushes the folder entry. A reader sees the previous complete file or the new complete file, never
part of one. Temporary files are named ``.ckpt-write-<pid>-<random>.tmp``: without ``last`` in the
name (Lightning's ``ckpt_path="last"`` considers every file whose name contains ``last``), and
those left by killed processes are removed at the next write into the same folder.
"""

from __future__ import annotations

import io
import os
import secrets
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.plugins import TorchCheckpointIO

TEMP_PREFIX = ".ckpt-write-"
TEMP_SUFFIX = ".tmp"


def _is_local(path: str | os.PathLike) -> bool:
    return "://" not in str(path) or str(path).startswith("file://")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):  # exists but not ours, or no way to tell: keep its file
        return True
    return True


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Remove the temporary files of writes in ``folder`` whose process no longer runs; returns
    the files removed."""
    removed = []
    for candidate in folder.glob(f"{TEMP_PREFIX}*{TEMP_SUFFIX}"):
        pid_text = candidate.name[len(TEMP_PREFIX) :].split("-", 1)[0]
        if not pid_text.isdigit():
            continue
        pid = int(pid_text)
        if pid != os.getpid() and not _process_alive(pid):
            candidate.unlink(missing_ok=True)
            removed.append(candidate)
    return removed


def _fsync_folder(folder: Path) -> None:
    """Flush a rename in ``folder`` to disk (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint IO, writing each local checkpoint atomically (module docstring).

    Remote paths (``s3://`` ...) are left to Lightning's implementation."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None
    ) -> None:
        if storage_options is not None or not _is_local(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        target = Path(str(path).removeprefix("file://"))
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(target.parent)
        name = f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}{TEMP_SUFFIX}"
        temporary = target.parent / name
        # O_EXCL: never another writer's file; mode 0o666 lets the umask decide, as for any file
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(fd, "wb") as file:
                self.write(checkpoint, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, target)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        _fsync_folder(target.parent)

    def write(self, checkpoint: dict[str, Any], file: io.BufferedIOBase) -> None:
        """Serialise ``checkpoint`` into the open temporary ``file`` (``torch.save``)."""
        torch.save(checkpoint, file)


def use_atomic_checkpoint_io(trainer: pl.Trainer) -> bool:
    """Make ``trainer`` write checkpoints with :class:`AtomicCheckpointIO` where it uses Lightning's
    default :class:`TorchCheckpointIO` (a checkpoint IO plugin of the user's own is kept). Returns
    True when the trainer's checkpoints are now written atomically."""
    current = trainer.strategy.checkpoint_io
    if isinstance(current, AtomicCheckpointIO):
        return True
    if type(current) is TorchCheckpointIO:
        trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        return True
    return False
