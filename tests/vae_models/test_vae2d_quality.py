"""Slow end to end: the dataset-1 diagonal-decoder config reaches the Gaussian floor (HW3 §1 A).

python -m pytest -m slow tests/vae_models/test_vae2d_quality.py
"""

from __future__ import annotations

import json

import pytest

from datamodules.toy2d import gaussian_entropy_bpd, sample_data_1, true_gaussian, true_nll_bpd


@pytest.mark.slow
def test_data1_diagonal_elbo_is_within_003_bits_of_the_truth(run_cli, tmp_path):
    run = tmp_path / "run"
    proc = run_cli(
        [
            "fit",
            "--config",
            "configs/hw3/vae_data1_diagonal.yaml",
            f"--trainer.default_root_dir={run}",
            "--trainer.enable_progress_bar=false",
        ],
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((run / "results.json").read_text())
    floor = gaussian_entropy_bpd(true_gaussian(1)[1])
    truth = true_nll_bpd(sample_data_1()[80000:], 1)  # the true law on the 20,000 test points
    assert abs(truth - floor) < 0.005
    # the negative ELBO bounds the NLL from above; allow the estimator's noise below the truth
    assert truth - 0.01 < results["test/bpd"] < truth + 0.03, (results["test/bpd"], truth)
    assert results["test/iwae100_bpd"] <= results["test/elbo100_bpd"]
    # one latent dimension carries the code (≈ ½ ln 25 nats), the other is unused
    kls = sorted([results["test/kl_dim0_bpd"], results["test/kl_dim1_bpd"]])
    assert kls[0] < 0.01 and kls[1] > 1.0
    for name in ("vae_samples", "latent_scatter", "loss_curves"):
        assert (run / "figures" / f"{name}.png").is_file()
