"""Slow end to end: the HW1 §2 configs reach the data's entropy (about 1-2 minutes each on a CPU).

python -m pytest -m slow tests/ar_models/test_2d_configs.py
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from datamodules.two_d import Distribution2DDataModule


@pytest.mark.slow
@pytest.mark.parametrize("config_name", ["ar_mlp_2d.yaml", "made_2d.yaml"])
def test_config_reaches_within_0_05_bits_of_the_entropy(
    config_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``configs/hw1/<config_name>`` end to end."""
    import train  # the CLI (imports every package), only for this end-to-end test

    monkeypatch.setenv("WANDB_MODE", "disabled")
    config = Path(__file__).parents[2] / "configs" / "hw1" / config_name
    train.main(
        args=["fit", "--config", str(config), "--trainer.default_root_dir", str(tmp_path)]
        + ["--trainer.enable_progress_bar", "false"]
    )
    test_bpd = json.loads((tmp_path / "results.json").read_text())["test/bpd"]
    entropy = Distribution2DDataModule().entropy_bpd
    assert entropy <= test_bpd + 0.01 and test_bpd - entropy < 0.05
