"""Bad command lines stop with one clear message on stderr and exit status 2, not a traceback."""

import pytest
import torch

import train

CONFIG = ["fit", "--config", "configs/hw1/warmup.yaml", "--trainer.max_epochs=1"]


def run_main(args: list[str], capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        train.main(args)
    return exit_info.value.code, capsys.readouterr().err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--data.init_args.batch_size=-4"], "error: batch_size must be a positive integer"),
        (["--data.init_args.val_fraction=1.5"], "val_fraction must be in the open interval (0, 1)"),
        (["--model.init_args.lr=0"], "error: lr must be > 0"),
        (["--trainer.max_epochz=3"], "max_epochz"),
        (["--model.init_args.n_categoriez=3"], "n_categoriez"),
        (["--model=NoSuchModel"], "NoSuchModel"),
    ],
)
def test_bad_arguments_stop_with_a_clear_message(tmp_path, capsys, monkeypatch, extra, message):
    monkeypatch.chdir(train.Path(train.__file__).parent)
    code, err = run_main([*CONFIG, f"--trainer.default_root_dir={tmp_path}", *extra], capsys)
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_unknown_key_in_a_config_file(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("model:\n  class_path: ar_models.Histogram\n  init_args:\n    lr_rate: 0.1\n")
    code, err = run_main(["fit", "--config", str(config)], capsys)
    assert code == 2
    assert "lr_rate" in err


def make_checkpoint(path, hparams):
    torch.save({"state_dict": {}, "hyper_parameters": hparams}, path)
    return path


@pytest.mark.parametrize(
    "name, hparams, message",
    [
        (
            "made_cli.ckpt",
            {"_class_path": "ar_models.made.MADE", "n_vars": 2},
            "holds a MADE (ar_models.made.MADE), but the config's model is Histogram",
        ),
        (
            "made_plain.ckpt",
            {"n_vars": 2, "hidden_sizes": [8]},
            "was saved by another model class: its hyper-parameters ['hidden_sizes', 'n_vars']",
        ),
    ],
)
def test_checkpoint_of_another_model_class(tmp_path, capsys, name, hparams, message):
    ckpt = make_checkpoint(tmp_path / name, hparams)
    code, err = run_main(["test", *CONFIG[1:3], f"--ckpt_path={ckpt}"], capsys)
    assert code == 2
    assert message in err and str(ckpt) in err


def test_missing_and_truncated_checkpoints(tmp_path, capsys):
    code, err = run_main(["test", *CONFIG[1:3], f"--ckpt_path={tmp_path / 'none.ckpt'}"], capsys)
    assert code == 2 and "none.ckpt does not exist" in err
    good = make_checkpoint(tmp_path / "good.ckpt", {"n_categories": 100})
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(good.read_bytes()[:200])
    code, err = run_main(["test", *CONFIG[1:3], f"--ckpt_path={truncated}"], capsys)
    assert code == 2 and "truncated.ckpt is incomplete or not a checkpoint" in err
    assert "was it truncated" in err and "Errno" not in err
