"""A run stopped mid-epoch and resumed with ``--ckpt_path last`` equals an uninterrupted run."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

import train
from ar_models import Histogram

REPO = Path(train.__file__).parent
ARGS = [
    "fit",
    "--config",
    "configs/hw1/warmup.yaml",
    "--trainer.max_epochs=3",
    "--data.init_args.batch_size=256",  # 25 steps per epoch
    "--trainer.deterministic=true",
    "--trainer.enable_progress_bar=false",
]


def fit(root: Path, *extra: str) -> None:
    train.main([*ARGS, f"--trainer.default_root_dir={root}", *extra])


def rows(root: Path, key: str) -> dict[int, float]:
    table = csv.DictReader(open(root / "metrics.csv"))
    return {int(r["step"]): float(r[key]) for r in table if r.get(key)}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    import os

    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        base = tmp_path_factory.mktemp("resume")
        fit(base / "full")
        fit(base / "split", "--trainer.max_steps=37")  # stops mid-way through epoch 1
        stopped = torch.load(base / "split/checkpoints/last.ckpt", weights_only=False)
        fit(base / "split", "--ckpt_path=last")
    finally:
        os.chdir(cwd)
    return base / "full", base / "split", stopped


def test_stop_saves_last_checkpoint_at_the_stop(runs):
    _, _, stopped = runs
    assert stopped["global_step"] == 37
    assert stopped["loops"]["fit_loop"]["state_dict"]["combined_loader"] == [
        {"epoch": 1, "batches_served": 12}
    ]


def test_resumed_run_reaches_the_same_parameters(runs):
    full, split, _ = runs
    a = torch.load(full / "checkpoints/last.ckpt", weights_only=False)
    b = torch.load(split / "checkpoints/last.ckpt", weights_only=False)
    assert a["global_step"] == b["global_step"] == 75
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    adam_a, adam_b = a["optimizer_states"][0]["state"][0], b["optimizer_states"][0]["state"][0]
    assert torch.equal(adam_a["exp_avg_sq"], adam_b["exp_avg_sq"])


def test_resumed_run_logs_the_same_metrics_and_keeps_the_earlier_rows(runs):
    full, split, _ = runs
    assert rows(split, "train/bpd") == rows(full, "train/bpd")  # all 75 steps, none lost
    assert len(rows(full, "train/bpd")) == 75
    assert rows(split, "val/bpd") == rows(full, "val/bpd")
    results = [json.loads((r / "results.json").read_text()) for r in (full, split)]
    assert results[0]["test/bpd"] == results[1]["test/bpd"]


def crash_at_step(step: int):
    """A ``training_step`` that raises at global step ``step`` (a crash mid-epoch)."""
    original = Histogram.training_step

    def training_step(self, batch, batch_idx):
        if self.global_step == step:
            raise RuntimeError(f"simulated crash at step {step}")
        return original(self, batch, batch_idx)

    return training_step


def test_resume_after_a_crash_logs_each_step_once(tmp_path, monkeypatch):
    """A crash at step 35 leaves rows up to step 34 and last.ckpt of the end of epoch 0 (step
    25); the resumed run logs steps 25..34 again, so their first rows are dropped."""
    monkeypatch.chdir(REPO)
    two_epochs = [*ARGS, "--trainer.max_epochs=2"]
    train.main([*two_epochs, f"--trainer.default_root_dir={tmp_path / 'full'}"])
    crashed = tmp_path / "crashed"
    with monkeypatch.context() as patch:
        patch.setattr(Histogram, "training_step", crash_at_step(35))
        with pytest.raises(RuntimeError, match="simulated crash at step 35"):
            train.main([*two_epochs, f"--trainer.default_root_dir={crashed}"])
    assert max(rows(crashed, "train/bpd")) == 34
    assert torch.load(crashed / "checkpoints/last.ckpt", weights_only=True)["global_step"] == 25
    train.main([*two_epochs, f"--trainer.default_root_dir={crashed}", "--ckpt_path=last"])
    table = list(csv.DictReader(open(crashed / "metrics.csv")))
    train_steps = [int(r["step"]) for r in table if r.get("train/bpd")]
    assert sorted(train_steps) == list(range(50))  # each step once
    assert rows(crashed, "train/bpd") == rows(tmp_path / "full", "train/bpd")
    assert rows(crashed, "val/bpd") == rows(tmp_path / "full", "val/bpd")
