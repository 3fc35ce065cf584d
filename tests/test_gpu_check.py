"""benchmarks/gpu_check.py: its parts run on the CPU on tiny settings (the same code a GPU run
uses), a broken cached sampler is reported as failed, and without CUDA it exits at once."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import gpu_check  # noqa: E402

from ar_models import sampling  # noqa: E402


def run(capsys, *args: str) -> tuple[int, str]:
    code = gpu_check.main(["--device", "cpu", "--quick", *args])
    return code, capsys.readouterr().out


def test_every_part_runs_on_tiny_settings_and_writes_the_table(tmp_path, capsys):
    table = tmp_path / "gpu_check.md"
    code, out = run(capsys, "--configs", "configs/hw1/warmup.yaml", "--markdown", str(table))
    assert code == 0, out
    code, out = run(capsys, "--parts", "234", "--configs", "configs/hw1/pixelcnn_made.yaml")
    assert code == 0, out
    written = table.read_text()
    assert "| 1 fast_dev_run | configs/hw1/warmup.yaml | ran | yes |" in written
    assert "2 cached sampling" not in written  # the histogram has no cached sampler
    assert "PixelCNN (configs/hw1/pixelcnn_made.yaml)" in out
    assert "cached = naive on 100.00% of pixels" in out
    for setting in ("fp32", "tf32", "bf16-mixed"):
        assert f"PixelCNN-MADE, {setting} | " in out and "training images/s" in out
    assert "10 cached samples, PixelCNN-MADE, fp32" in out


def test_a_cached_sampler_that_drifts_from_the_network_fails(capsys, monkeypatch):
    output = sampling.MaskedConvCache.output

    def drifting(self, row: int, col: int) -> torch.Tensor:
        return output(self, row, col) + 0.5

    monkeypatch.setattr(sampling.MaskedConvCache, "output", drifting)
    code, out = run(capsys, "--parts", "2", "--configs", "configs/hw1/pixelcnn.yaml")
    assert code == 1
    assert "| 2 cached sampling | PixelCNN (configs/hw1/pixelcnn.yaml) |" in out
    assert "| **NO** |" in out


def test_a_failing_config_is_reported_not_raised(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  class_path: ar_models.Histogram\n  init_args:\n    lr: -1\n")
    row = gpu_check.run_config(str(bad), torch.device("cpu"), tmp_path)
    assert not row.ok and "FAILED" in row.result


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_without_cuda_one_line_and_exit_status_0(capsys):
    assert gpu_check.main([]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out == [
        "gpu_check: no CUDA device here; nothing to check (run it on a machine with a GPU)"
    ]
