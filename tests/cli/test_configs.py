"""``--config`` names resolve from any folder (shipped configs, several files merged in order), and
a module in the working folder that hides one of the library's packages is named."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

import train
from tests.conftest import REPO_ROOT


def fit_from(folder, monkeypatch, *args: str) -> None:
    monkeypatch.chdir(folder)
    train.main(["fit", *args, "--trainer.enable_progress_bar=false"])


@pytest.mark.parametrize("name", ["hw1/warmup.yaml", "configs/hw1/warmup.yaml"])
def test_a_shipped_config_name_works_from_another_folder(tmp_path, monkeypatch, name):
    fit_from(tmp_path, monkeypatch, f"--config={name}", "--trainer.max_epochs=1")
    run = tmp_path / "runs" / "warmup"  # the run is named after the config
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["model"]["class_path"] == "ar_models.Histogram"
    assert (run / "results.json").is_file()


def test_several_configs_are_merged_in_order(tmp_path, monkeypatch):
    override = tmp_path / "short.yaml"
    override.write_text("trainer:\n  max_epochs: 1\ndata:\n  init_args:\n    batch_size: 512\n")
    fit_from(tmp_path, monkeypatch, "--config", "hw1/warmup.yaml", "--config", str(override))
    run = tmp_path / "runs" / "short"  # named after the last config
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["trainer"]["max_epochs"] == 1
    assert config["data"]["init_args"]["batch_size"] == 512
    assert config["model"]["init_args"]["lr"] == 0.03  # from hw1/warmup.yaml
    assert config["data"]["init_args"]["val_fraction"] == 0.2


def test_an_unknown_config_name_lists_the_shipped_ones(tmp_path, monkeypatch, capsys):
    with pytest.raises(SystemExit) as stop:
        fit_from(tmp_path, monkeypatch, "--config=hw1/warmupp.yaml")
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "--config hw1/warmupp.yaml: no such file" in err
    assert "hw1/warmup.yaml" in err and "Traceback" not in err


def test_shipped_configs_are_the_checkout_configs():
    assert train.shipped_configs() == REPO_ROOT / "configs"


def test_a_module_hiding_a_library_package_is_named(tmp_path):
    (tmp_path / "callbacks.py").write_text("# the user's own callbacks\n")
    code = f"import sys; sys.path[:0] = ['', {str(REPO_ROOT)!r}]; import train"
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode != 0
    assert f"hidden by modules of the same name: callbacks ({tmp_path / 'callbacks.py'})" in (
        proc.stderr
    )
    assert "rename them or run from another folder" in proc.stderr


def test_setup_cfg_installs_every_package_of_the_repository():
    import configparser

    setup = configparser.ConfigParser()
    setup.read(REPO_ROOT / "setup.cfg")
    listed = set(setup["options"]["packages"].split())
    on_disk = {p.parent.name for p in REPO_ROOT.glob("*/__init__.py")} - {"tests", "configs"}
    assert on_disk <= listed, f"add {sorted(on_disk - listed)} to [options] packages in setup.cfg"
    assert "deepul_configs" in listed  # configs/, installed under that name
