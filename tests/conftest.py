"""Shared test fixtures and helpers. W&B is disabled for in-process runs unless a test asks
otherwise."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

os.environ.setdefault("WANDB_MODE", "disabled")
REPO_ROOT = Path(__file__).resolve().parents[1]


def quiet_trainer(root: Path, **kwargs):
    """A ``pl.Trainer`` for short in-process fits into ``root``: no logger, checkpoints, progress
    bar, model summary or sanity validation (``kwargs`` add to or override these)."""
    import pytorch_lightning as pl

    settings = dict(
        default_root_dir=root,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    return pl.Trainer(**{**settings, **kwargs})


def _run_cli(
    args: list[str], env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """Run ``python train.py ARGS`` from the repository root with stdin closed."""
    return subprocess.run(
        [sys.executable, "train.py", *args],
        cwd=REPO_ROOT,
        env=env if env is not None else dict(os.environ),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def run_cli() -> Callable[..., subprocess.CompletedProcess]:
    return _run_cli


@pytest.fixture
def offline_wandb_env(tmp_path: Path) -> dict[str, str]:
    """An environment with no W&B credentials (no key, empty HOME) and no WANDB_MODE."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    home = tmp_path / "home"
    home.mkdir()
    env["HOME"] = str(home)
    return env
