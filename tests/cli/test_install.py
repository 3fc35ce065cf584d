"""The package installed non-editable into a fresh virtual environment, used from another folder:
``deepul-train`` trains the shipped ``hw1/warmup.yaml``, samples from its checkpoint, and
``load_model`` rebuilds the model (slow: it installs torch and every dependency)."""

from __future__ import annotations

import os
import shutil
import subprocess
import venv
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow


def source_files() -> list[str]:
    """The files of the working tree a clone would hold: tracked and untracked-not-ignored."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return [f for f in listed if (REPO_ROOT / f).is_file()]


def run(command: list[str], cwd: Path, env: dict[str, str], timeout: float = 1200):
    proc = subprocess.run(
        command,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"{command}:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh venv with torch==2.13.0 (first, so pip never looks for another torch), then the
    package from a copy of the working tree (``pip install <copy>``, not editable)."""
    base = tmp_path_factory.mktemp("install")
    source = base / "source"
    for name in source_files():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, source / name)
    venv.create(base / "venv", with_pip=True)
    python = base / "venv" / "bin" / "python"
    home = base / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "PYTHON", "VIRTUAL"))}
    env.update(HOME=str(home), OMP_NUM_THREADS="1", PATH=f"{python.parent}:{env['PATH']}")
    pip = [str(python), "-m", "pip", "install", "--quiet"]
    run([*pip, "torch==2.13.0"], base, env)
    run([*pip, str(source)], base, env)
    work = base / "work"
    work.mkdir()
    return python, work, env


def test_the_package_is_not_the_checkout(installed):
    python, work, env = installed
    proc = run([str(python), "-c", "import train; print(train.__file__)"], work, env)
    assert "site-packages" in proc.stdout and str(REPO_ROOT) not in proc.stdout


def test_the_package_data_is_installed(installed):
    python, work, env = installed
    check = (
        "import train; from metrics.digits import digit_reader; digit_reader(); "
        "print(train.shipped_configs())"
    )
    proc = run([str(python), "-c", check], work, env)
    assert proc.stdout.strip().endswith("site-packages/deepul_configs")


def test_the_console_command_trains_a_shipped_config_and_load_model_reads_it(installed):
    python, work, env = installed
    command = python.parent / "deepul-train"
    run(
        [
            str(command),
            "fit",
            "--config=hw1/warmup.yaml",
            "--trainer.max_epochs=2",
            "--trainer.enable_progress_bar=false",
        ],
        work,
        env,
    )
    run_dir = work / "runs" / "warmup"
    assert (run_dir / "results.json").is_file() and (run_dir / "figures/loss_curves.png").is_file()
    (best,) = (run_dir / "checkpoints").glob("best-*.ckpt")
    check = (
        "import sys, torch; from model_checkpoints import load_model; "
        "m = load_model(sys.argv[1]); "
        "saved = torch.load(sys.argv[1], weights_only=True)['state_dict']['logits']; "
        "print(type(m).__module__, type(m).__name__, torch.equal(m.logits, saved))"
    )
    proc = run([str(python), "-c", check, str(best)], work, env)
    assert proc.stdout.split() == ["ar_models.histogram", "Histogram", "True"]
    run([str(command), "predict", f"--ckpt_path={best}", "--n=16"], work, env)
    assert (run_dir / "eval" / f"{best.stem}-predict-seed0" / "samples.npy").is_file()


def test_the_console_command_sees_the_same_subcommands_as_train_py(installed):
    python, work, env = installed
    proc = run([str(python.parent / "deepul-train"), "--help"], work, env)
    for subcommand in ("fit", "validate", "test", "predict"):
        assert subcommand in proc.stdout


def test_a_shipped_config_finds_its_base_in_the_installed_package(installed):
    """hw3/vae_data2_isotropic.yaml loads ``config: vae2d.yaml`` from beside itself in
    site-packages (the working folder holds no configs)."""
    python, work, env = installed
    proc = run(
        [
            str(python.parent / "deepul-train"),
            "fit",
            "--config=hw3/vae_data2_isotropic.yaml",
            "--print_config",
        ],
        work,
        env,
    )
    config = yaml.safe_load(proc.stdout)
    assert config["model"]["init_args"]["decoder_variance"] == "isotropic"
    assert config["data"]["init_args"]["dataset"] == 2
    assert config["model"]["class_path"] == "vae_models.vae2d.VAE2D"  # from vae2d.yaml
