"""A training run killed with SIGKILL at random moments, some of them inside a checkpoint write, and
resumed each time with ``--ckpt_path last``, ends with exactly the parameters, optimiser state,
EMA, logged metrics and test result of the same run left alone; no kill leaves a checkpoint that
cannot be read.

The model is a small VAE (reparameterisation noise every step, so the resumed steps must draw the
same random numbers) with an EMA of its weights and a cosine learning-rate schedule, trained from
``train.py`` in a subprocess. Run as a script, this file is that subprocess: ``train.main`` plus a
callback that prints ``@@step <k>`` after every batch and, where ``SLOW_CHECKPOINT_WRITES`` is set,
checkpoint writes that print ``@@writing`` half-way through and then pause, so the test can kill
the process inside a write.
"""

from __future__ import annotations

import csv
import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

REPO = Path(__file__).resolve().parents[2]
MARK_STEP = "@@step "
MARK_WRITING = "@@writing"
SLOW_WRITES = "SLOW_CHECKPOINT_WRITES"
TEMPORARY_GLOB = ".ckpt-write-*.tmp"

CONFIG = """\
model:
  class_path: vae_models.vae2d.VAE2D
  init_args:
    hidden_sizes: [16, 16]
    lr: 0.002
    lr_final_factor: 0.1
    eval_samples: 4
    iwae_k: 4
    iwae_points: 20
data:
  class_path: datamodules.toy2d.Toy2DDataModule
  init_args:
    dataset: 1
    batch_size: 256
trainer:
  max_epochs: {epochs}
  limit_train_batches: {batches}
  limit_val_batches: 2
  limit_test_batches: 2
  accelerator: cpu
  devices: 1
  enable_progress_bar: false
  enable_model_summary: false
  log_every_n_steps: 5
  callbacks:
    - class_path: callbacks.ema.EMA
      init_args:
        decay: 0.9
    - class_path: callbacks.timed_checkpoint.TimedCheckpoint
      init_args:
        every_minutes: 0.0002
    - class_path: __main__.StepMarker
"""


class StepMarker(pl.Callback):
    """Prints ``@@step <global step>`` after every training batch (the test reads it)."""

    def on_train_batch_end(self, trainer: pl.Trainer, *args: object) -> None:
        print(f"{MARK_STEP}{trainer.global_step}", flush=True)


def slow_down_checkpoint_writes() -> None:
    """Every checkpoint write stops half-way, says so, and sleeps before writing the rest."""
    import io

    from callbacks.atomic_checkpoint_io import AtomicCheckpointIO

    def write(self: AtomicCheckpointIO, checkpoint: dict, file: io.BufferedIOBase) -> None:
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        data = buffer.getvalue()
        file.write(data[: len(data) // 2])
        file.flush()
        print(MARK_WRITING, flush=True)
        time.sleep(0.5)
        file.write(data[len(data) // 2 :])

    AtomicCheckpointIO.write = write  # type: ignore[method-assign]


# ---------------------------------------------------------------------- the test's side
class Run:
    """One ``train.py fit`` subprocess whose stdout lines arrive in a queue."""

    def __init__(self, args: list[str], log: Path, slow_writes: bool) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.pop(SLOW_WRITES, None)
        if slow_writes:
            env[SLOW_WRITES] = "1"
        self.stderr = log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, __file__, *args],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.step = -1

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for(self, min_step: int, writing: bool, timeout: float = 240.0) -> bool:
        """Read until a step marker >= ``min_step`` (and, with ``writing``, a write marker after
        it); True when that happened, False when the run ended first."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.kill()
                raise AssertionError(f"no progress within {timeout} s") from None
            if line is None:
                return False
            if line.startswith(MARK_STEP):
                self.step = int(line[len(MARK_STEP) :])
            elif line == MARK_WRITING and writing and self.step >= min_step:
                return True
            if not writing and self.step >= min_step:
                return True

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=60)
        self.stderr.close()

    def finish(self, timeout: float = 300.0) -> int:
        while self.lines.get(timeout=timeout) is not None:
            pass
        code = self.process.wait(timeout=timeout)
        self.stderr.close()
        return code


def fit_args(config: Path, root: Path, *extra: str) -> list[str]:
    return ["fit", f"--config={config}", f"--trainer.default_root_dir={root}", *extra]


def assert_every_checkpoint_loads(root: Path) -> None:
    files = sorted((root / "checkpoints").glob("*.ckpt"))
    assert files, f"no checkpoint in {root / 'checkpoints'}"
    for path in files:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
        assert "state_dict" in checkpoint and "optimizer_states" in checkpoint, path


def checkpoint_state(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


def assert_same_training_state(a: dict, b: dict) -> None:
    assert a["global_step"] == b["global_step"]
    assert a["epoch"] == b["epoch"]
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    for state_a, state_b in zip(
        a["optimizer_states"][0]["state"].values(),
        b["optimizer_states"][0]["state"].values(),
        strict=True,
    ):
        for name in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(state_a[name], state_b[name]), name
    assert a["lr_schedulers"] == b["lr_schedulers"]
    ema_a = next(v for k, v in a["callbacks"].items() if k.startswith("EMA"))
    ema_b = next(v for k, v in b["callbacks"].items() if k.startswith("EMA"))
    assert ema_a.keys() == ema_b.keys()
    for key, value in ema_a.items():
        if isinstance(value, dict):
            for name in value:
                assert torch.equal(value[name], ema_b[key][name]), (key, name)


def kill_and_resume(tmp_path: Path, kills: list[tuple[int, bool]], epochs: int, batches: int):
    """The reference run, then the same run killed at each ``(min_step, inside_a_write)`` of
    ``kills`` and resumed; returns both run folders."""
    config = tmp_path / "vae.yaml"
    config.write_text(CONFIG.format(epochs=epochs, batches=batches))
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    assert Run(fit_args(config, reference), tmp_path / "reference.log", False).finish() == 0

    resume: list[str] = []
    for n, (min_step, inside_write) in enumerate(kills):
        run = Run(fit_args(config, killed, *resume), tmp_path / f"killed{n}.log", inside_write)
        assert run.wait_for(min_step, inside_write), f"run {n} ended before step {min_step}"
        run.kill()
        if inside_write:  # the interrupted write's temporary file is there, half written
            assert list((killed / "checkpoints").glob(TEMPORARY_GLOB)), "kill missed the write"
        assert_every_checkpoint_loads(killed)
        resume = ["--ckpt_path=last"]
    final = Run(fit_args(config, killed, *resume), tmp_path / "final.log", False)
    assert final.finish() == 0, (tmp_path / "final.log").read_text()[-3000:]
    return reference, killed


def logged(root: Path, key: str) -> list[tuple[str, str]]:
    """(step, value) of every metrics.csv row holding ``key``, in file order."""
    with (root / "metrics.csv").open(newline="") as file:
        return [(row["step"], row[key]) for row in csv.DictReader(file) if row.get(key)]


def assert_same_result(reference: Path, killed: Path) -> None:
    assert_every_checkpoint_loads(killed)
    assert not list((killed / "checkpoints").glob(TEMPORARY_GLOB))  # cleaned at the next write
    assert [p.name for p in (killed / "checkpoints").glob("last*")] == ["last.ckpt"]
    assert_same_training_state(
        checkpoint_state(reference / "checkpoints/last.ckpt"),
        checkpoint_state(killed / "checkpoints/last.ckpt"),
    )
    results = [json.loads((r / "results.json").read_text()) for r in (reference, killed)]
    assert results[0]["test/bpd"] == results[1]["test/bpd"]
    for key in ("train/bpd", "val/bpd"):  # every step once, with the uninterrupted run's values
        assert logged(killed, key) == logged(reference, key) != [], key


def test_killed_twice_once_inside_a_write_ends_like_the_uninterrupted_run(tmp_path):
    """Default-suite variant: 2 epochs of 20 steps, killed at a random step of the first epoch and
    then inside a checkpoint write in the second."""
    rng = random.Random(0)
    kills = [(rng.randrange(3, 17), False), (rng.randrange(21, 33), True)]
    reference, killed = kill_and_resume(tmp_path, kills, epochs=2, batches=20)
    assert_same_result(reference, killed)


def test_sigterm_stops_with_an_interrupted_checkpoint_and_a_failure_status(tmp_path):
    """SIGTERM (a scheduler pre-empting the job) mid-run: the run writes its stop checkpoint and
    exits with 128 + 15, so the scheduler does not count it as finished; resuming then ends with
    the uninterrupted run's test result."""
    config = tmp_path / "vae.yaml"
    config.write_text(CONFIG.format(epochs=2, batches=20))
    reference, stopped = tmp_path / "reference", tmp_path / "stopped"
    assert Run(fit_args(config, reference), tmp_path / "reference.log", False).finish() == 0
    run = Run(fit_args(config, stopped), tmp_path / "stopped.log", False)
    assert run.wait_for(5, writing=False)
    run.process.send_signal(signal.SIGTERM)
    assert run.finish() == 128 + signal.SIGTERM, (tmp_path / "stopped.log").read_text()[-3000:]
    assert list((stopped / "checkpoints").glob("interrupted-step*.ckpt"))
    assert not (stopped / "results.json").exists()
    final = Run(fit_args(config, stopped, "--ckpt_path=last"), tmp_path / "final.log", False)
    assert final.finish() == 0, (tmp_path / "final.log").read_text()[-3000:]
    results = [json.loads((r / "results.json").read_text()) for r in (reference, stopped)]
    assert results[0]["test/bpd"] == results[1]["test/bpd"]


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_killed_at_six_random_moments_ends_like_the_uninterrupted_run(tmp_path, seed):
    """Six kills at random steps of 3 epochs of 40 steps, each inside a checkpoint write with
    probability 1/2 (seed 1: five of them, seed 2: one)."""
    rng = random.Random(seed)
    steps = sorted(rng.sample(range(3, 110), 6))
    kills = [(step, rng.random() < 0.5) for step in steps]
    reference, killed = kill_and_resume(tmp_path, kills, epochs=3, batches=40)
    assert_same_result(reference, killed)


if __name__ == "__main__":
    if os.environ.get(SLOW_WRITES):
        slow_down_checkpoint_writes()
    import train

    train.main(sys.argv[1:])
