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


SHORT_VAE2D = [
    "--trainer.max_epochs=1",
    "--trainer.limit_train_batches=2",
    "--trainer.limit_val_batches=1",
    "--trainer.limit_test_batches=1",
    "--model.init_args.iwae_points=4",
]


def test_a_config_that_loads_a_base_runs_from_another_folder(tmp_path, monkeypatch):
    """hw3/vae_data2_isotropic.yaml names its base (``config: vae2d.yaml``, found beside it, not
    in the working folder) and overrides two settings with dotted keys; the run is named after it
    and its config.yaml holds the base's settings with the overrides, and reruns the same config."""
    fit_from(tmp_path, monkeypatch, "--config", "hw3/vae_data2_isotropic.yaml", *SHORT_VAE2D)
    run = tmp_path / "runs" / "vae_data2_isotropic"
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["model"]["init_args"]["decoder_variance"] == "isotropic"  # overridden
    assert config["data"]["init_args"]["dataset"] == 2  # overridden
    assert config["model"]["init_args"]["hidden_sizes"] == [128, 128]  # from vae2d.yaml
    callbacks = [c["class_path"].rsplit(".", 1)[-1] for c in config["trainer"]["callbacks"]]
    assert {"VAESamples", "LatentScatter"} <= set(callbacks)  # from vae2d.yaml
    assert (run / "figures" / "latent_scatter.png").is_file()
    saved = tmp_path / "saved.yaml"
    saved.write_text((run / "config.yaml").read_text())
    fit_from(tmp_path, monkeypatch, "--config", str(saved))  # into the same folder (its root)
    assert yaml.safe_load((run / "config.yaml").read_text()) == config
    assert len(list((tmp_path / "runs").glob("vae_data2_isotropic-*"))) == 1  # the first run


def test_a_base_and_its_overrides_resolve_as_written_out(tmp_path):
    """A base loaded with ``config:`` and then a dotted key: the key overrides one setting, the
    rest of the base stays (a nested mapping after ``config:`` would replace the whole group)."""
    (tmp_path / "base.yaml").write_text(
        "model:\n  class_path: ar_models.Histogram\n  init_args:\n    n_categories: 100\n"
        "    lr: 0.03\ndata:\n  class_path: datamodules.WarmupDataModule\n"
        "trainer:\n  max_epochs: 30\n  log_every_n_steps: 1\n"
    )
    (tmp_path / "child.yaml").write_text(
        "config: base.yaml\nmodel.init_args.lr: 0.05\ntrainer.max_epochs: 2\n"
    )
    config = train.resolved_config(str(tmp_path / "child.yaml"))
    assert config["model"]["init_args"] == {"n_categories": 100, "lr": 0.05}
    assert config["trainer"]["max_epochs"] == 2 and config["trainer"]["log_every_n_steps"] == 1
    assert config["data"]["class_path"] == "datamodules.WarmupDataModule"
    # why the shipped configs override with dotted keys: a mapping replaces the base's whole group
    (tmp_path / "nested.yaml").write_text("config: base.yaml\ntrainer:\n  max_epochs: 2\n")
    nested = train.resolved_config(str(tmp_path / "nested.yaml"))
    assert nested["trainer"]["max_epochs"] == 2 and nested["trainer"]["log_every_n_steps"] != 1


def test_a_family_of_configs_chains_its_bases():
    """The GPU-sized svhn_vae_af.yaml loads svhn_vae_af_quick.yaml, which loads svhn_vae_quick.yaml:
    the sizes of the first, the prior and its ``prior_fit`` of the second, the rest of the third."""
    af = train.resolved_config("hw3/svhn_vae_af.yaml")
    model = af["model"]["init_args"]
    assert (model["n_filters"], model["n_layers"], model["prior"]) == (128, 5, "flow")
    assert (model["prior_components"], model["prior_training"]) == (10, "posterior")
    assert model["beta"] == 4.0 and model["latent_shape"] == [32, 1, 1]  # from the family base
    assert af["prior_fit"]["class_path"] == "callbacks.prior_fit.FitPrior"
    assert af["prior_fit"]["init_args"] == {"last_epochs": 1, "steps": 6000}
    assert af["data"]["init_args"]["batch_size"] == 128 and af["trainer"]["max_epochs"] == 20
    callbacks = [c["class_path"].rsplit(".", 1)[-1] for c in af["trainer"]["callbacks"]]
    assert "SampleQualityMonitor" in callbacks  # the base's list, whole
    fitted = train.resolved_config("hw3/svhn_vae_fitted.yaml")
    assert fitted["prior_fit"]["init_args"]["last_epochs"] == 3
    assert train.resolved_config("hw3/svhn_vae.yaml")["prior_fit"] is None
