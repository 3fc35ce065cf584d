"""The HW3 §2 and bonus CPU-sized configs through the CLI: a few steps, then the test of the best
checkpoint writes the bound, the latent-use diagnostics and the digit-reader numbers into
results.json. (The GPU-sized ones run a step in tests/cli/test_every_config.py.)"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "hw3"
QUICK = ["svhn_vae_quick", "svhn_vae_af_quick", "pixelvae_quick"]


def fit(name: str, root: Path, *extra: str) -> None:
    from train import main

    main(
        [
            "fit",
            "--config",
            str(CONFIGS / f"{name}.yaml"),
            f"--trainer.default_root_dir={root}",
            "--trainer.accelerator=cpu",
            "--trainer.enable_progress_bar=false",
            *extra,
        ]
    )


@pytest.mark.parametrize("name", QUICK)
def test_quick_config_results(name, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["train.py"])
    monkeypatch.setenv("WANDB_MODE", "disabled")
    fit(
        name,
        tmp_path,
        "--trainer.max_steps=2",
        "--trainer.limit_val_batches=1",
        "--trainer.limit_test_batches=2",
    )
    results = json.loads((tmp_path / "results.json").read_text())
    for key in ("test/bpd", "test/kl_bpd", "test/active_units", "test/mi_nats"):
        assert key in results, key
    assert 0.0 <= results["test/recon_accuracy"] <= 1.0
    assert 0.0 <= results["test/recognised"] <= 1.0
    figures = {p.stem for p in (tmp_path / "figures").glob("*.png")}
    assert {"reconstructions", "interpolations", "samples", "sample_quality"} <= figures
