"""A fit's run folder stays as the fit left it: test, validate and predict of its checkpoints write
into ``eval/<checkpoint>-<subcommand>/``; a fit that fails on bad data moves nothing."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import train
from ar_models.errors import UsageError
from callbacks.predict import sample_labels
from model_checkpoints import load_model

REPO = Path(train.__file__).parent
FIT = [
    "fit",
    "--config",
    "configs/hw1/warmup.yaml",
    "--trainer.max_epochs=2",
    "--trainer.enable_progress_bar=false",
]
KEPT = ("config.yaml", "results.json", "metrics.csv", "hparams.yaml")


def in_repo(args: list[str]) -> None:
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        train.main(args)
    finally:
        os.chdir(cwd)


def snapshot(run: Path) -> dict[str, bytes]:
    return {name: (run / name).read_bytes() for name in KEPT}


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """A 2-epoch fit, then test, validate and predict (twice) on its best checkpoint."""
    run = tmp_path_factory.mktemp("run_folder") / "run"
    in_repo([*FIT, f"--trainer.default_root_dir={run}"])
    before = snapshot(run)
    (best,) = (run / "checkpoints").glob("best-*.ckpt")
    for subcommand in ("test", "validate"):
        in_repo([subcommand, f"--ckpt_path={best}", "--trainer.enable_progress_bar=false"])
    for seed in (0, 0, 1):
        in_repo(["predict", f"--ckpt_path={best}", "--n=4000", f"--seed={seed}"])
    return run, best, before


def test_evaluations_leave_the_fit_files_byte_identical(evaluated):
    run, _, before = evaluated
    assert snapshot(run) == before
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == sorted(
        [next((run / "checkpoints").glob("best-*.ckpt")).name, "last.ckpt"]
    )


def test_evaluations_write_into_their_own_folders(evaluated):
    run, best, _ = evaluated
    stem = best.stem
    names = sorted(p.name for p in (run / "eval").iterdir())
    # the second predict with seed 0 moved the first one's folder aside (<folder>-<date>-<time>)
    moved = [n for n in names if n.startswith(f"{stem}-predict-seed0-")]
    assert len(moved) == 1
    assert [n for n in names if n not in moved] == [
        f"{stem}-predict-seed0",
        f"{stem}-predict-seed1",
        f"{stem}-test",
        f"{stem}-validate",
    ]
    for folder in (run / "eval").iterdir():
        assert (folder / "config.yaml").is_file()


def test_test_and_validate_reproduce_the_fit_numbers(evaluated):
    run, best, _ = evaluated
    fit_results = json.loads((run / "results.json").read_text())
    tested = json.loads((run / "eval" / f"{best.stem}-test" / "results.json").read_text())
    assert tested["test/bpd"] == pytest.approx(fit_results["test/bpd"], abs=1e-6)
    assert Path(tested["checkpoint"]) == best
    validated = json.loads((run / "eval" / f"{best.stem}-validate" / "results.json").read_text())
    epoch = int(best.stem.split("epoch")[1].split("-")[0])
    rows = csv.DictReader(open(run / "metrics.csv"))
    logged = {int(r["epoch"]): float(r["val/bpd"]) for r in rows if r.get("val/bpd")}
    assert validated["val/bpd"] == pytest.approx(logged[epoch], abs=1e-6)


def test_predict_draws_from_the_checkpoint_reproducibly(evaluated):
    run, best, _ = evaluated
    folder = run / "eval" / f"{best.stem}-predict-seed0"
    samples = np.load(folder / "samples.npy")
    assert samples.shape == (4000,) and samples.dtype == np.int64
    assert (folder / "samples.png").stat().st_size > 5_000
    other = np.load(run / "eval" / f"{best.stem}-predict-seed1" / "samples.npy")
    assert not np.array_equal(samples, other)
    # the trained probabilities, not the uniform initial ones: total variation well under the
    # uniform distribution's distance to them
    probs = torch.softmax(load_model(best).logits.detach(), 0).numpy()
    frequencies = np.bincount(samples, minlength=100) / len(samples)
    assert 0.5 * np.abs(frequencies - probs).sum() < 0.12
    assert 0.5 * np.abs(1 / 100 - probs).sum() > 0.4


def test_predict_with_the_same_seed_gives_the_same_samples(tmp_path):
    run = tmp_path / "run"
    in_repo([*FIT[:3], "--trainer.max_epochs=1", f"--trainer.default_root_dir={run}"])
    folder = run / "eval" / "last-predict-seed5"
    last = run / "checkpoints" / "last.ckpt"
    draws = []
    for _ in range(2):
        in_repo(["predict", f"--ckpt_path={last}", "--n=50", "--seed=5"])
        draws.append(np.load(folder / "samples.npy"))
    assert np.array_equal(*draws)


def test_best_and_last_name_the_checkpoints_of_the_run_folder(evaluated, tmp_path, capsys):
    run, best, _ = evaluated
    in_repo(["test", *FIT[1:3], f"--trainer.default_root_dir={run}", "--ckpt_path=best"])
    assert (run / "eval" / f"{best.stem}-test" / "results.json").is_file()
    with pytest.raises(SystemExit) as stop:
        in_repo(["test", *FIT[1:3], f"--trainer.default_root_dir={tmp_path}", "--ckpt_path=last"])
    assert stop.value.code == 2
    assert f"no {tmp_path / 'checkpoints' / 'last.ckpt'}" in capsys.readouterr().err


def test_an_evaluation_without_a_checkpoint_says_what_it_needs(capsys):
    with pytest.raises(SystemExit) as stop:
        in_repo(["test", *FIT[1:3]])
    assert stop.value.code == 2
    assert "test needs --ckpt_path" in capsys.readouterr().err


def test_predict_labels_need_a_class_conditional_model(evaluated, capsys):
    _, best, _ = evaluated
    with pytest.raises(SystemExit) as stop:
        in_repo(["predict", f"--ckpt_path={best}", "--labels=3"])
    assert stop.value.code == 2
    assert "Histogram is not class-conditional" in capsys.readouterr().err


def test_predict_help_lists_its_arguments(capsys):
    with pytest.raises(SystemExit):
        train.main(["predict", "--help"])
    out = capsys.readouterr().out
    for option in ("--n N", "--seed SEED", "--labels LABELS", "--batch_size BATCH_SIZE"):
        assert option in out


def test_a_fit_failing_on_its_data_leaves_the_earlier_run_in_place(tmp_path, capsys):
    run = tmp_path / "run"
    in_repo([*FIT[:3], "--trainer.max_epochs=1", f"--trainer.default_root_dir={run}"])
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    missing = tmp_path / "no-such-digits.pkl"
    with pytest.raises(SystemExit) as stop:
        in_repo(
            [
                "fit",
                "--config=configs/quickstart.yaml",
                f"--data.init_args.pickle_path={missing}",
                f"--trainer.default_root_dir={run}",
            ]
        )
    assert stop.value.code == 2
    assert str(missing) in capsys.readouterr().err
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # nothing archived
    assert not list(run.glob("checkpoints/interrupted-*"))


class ConditionalStub:
    """Stands in for a class-conditional model: ``n_classes`` classes, nothing else."""

    def __init__(self, n_classes: int) -> None:
        self.n_classes = n_classes


def test_sample_labels_cycle_over_the_classes_or_the_given_ones():
    model = ConditionalStub(3)
    assert sample_labels(model, 7, None).tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert sample_labels(model, 4, 2).tolist() == [2, 2, 2, 2]
    assert sample_labels(model, 5, [1, 0]).tolist() == [1, 0, 1, 0, 1]
    with pytest.raises(UsageError, match="expected labels in 0..2"):
        sample_labels(model, 4, [3])


def test_an_evaluation_warns_about_nothing_the_user_can_act_on(evaluated, recwarn):
    _, best, _ = evaluated
    in_repo(["validate", f"--ckpt_path={best}", "--trainer.enable_progress_bar=false"])
    messages = [str(w.message) for w in recwarn]
    assert not [m for m in messages if "callbacks used to create the checkpoint" in m], messages
