"""The command line's rough edges, smoothed: a thin train.py; help and usage errors before torch
loads; one line with the closest valid names for a typo; evaluations without a config; predict's
setup, seed and messages; hparams.yaml's class; no start-up tip; runs shorter than an epoch; the
callbacks the docs name; a second evaluation moving the first aside; evaluations in W&B; the
notebook command writing into an ignored folder."""

from __future__ import annotations

import difflib
import inspect
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

import train
from tests.cli.wandb_records import history_keys, run_id, run_name
from tests.conftest import REPO_ROOT, _run_cli

WARMUP = str(REPO_ROOT / "configs" / "hw1" / "warmup.yaml")


def run_main(args: list[str], capsys) -> tuple[int, str, str]:
    """``train.main(args)``: its exit status (0 when it returns), stdout and stderr."""
    code = 0
    try:
        train.main(args)
    except SystemExit as stop:
        code = stop.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_error_line(err: str) -> str:
    """The single ``error: ...`` line that is all of ``err``."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err[-3000:]
    return lines[0]


@pytest.fixture(scope="module")
def short_fit(tmp_path_factory):
    """``fit --config hw1/warmup.yaml --trainer.max_steps 3`` (shorter than one epoch, progress
    bar on), logging to W&B offline without credentials; the run folder and the process."""
    base = tmp_path_factory.mktemp("short_fit")
    (base / "home").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(HOME=str(base / "home"), OMP_NUM_THREADS="1")
    root = base / "run"
    args = [
        "fit",
        f"--config={WARMUP}",
        "--trainer.max_steps=3",
        f"--trainer.default_root_dir={root}",
    ]
    proc = _run_cli(args, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root, proc, env


def copy_of(run: Path, tmp_path: Path) -> Path:
    """A copy of a run folder (so that tests do not see each other's evaluations)."""
    return Path(shutil.copytree(run, tmp_path / run.name))


# ----------------------------------------------------------------------- 1. a thin entry point
def test_train_py_is_at_most_200_lines():
    assert len((REPO_ROOT / "train.py").read_text().splitlines()) <= 200


# ----------------------------------------------------------------------- 2. help before torch
FAST = [
    (["--help"], 0, "usage: "),
    (["--version"], 0, "deepul-lightning "),
    ([], 2, "error: give a subcommand: fit, validate, test, predict"),
    (["fitt", "--config", "hw1/warmup.yaml"], 2, "error: unknown subcommand 'fitt'; closest: fit"),
    (["fit", "--config", "nonexistent.yaml"], 2, "error: --config nonexistent.yaml: no such file"),
    (["fit", "--config", "hw1/warmupp.yaml"], 2, "closest: hw1/warmup.yaml;"),
    (["test", "--ckpt_path", "last"], 2, "error: test --ckpt_path last without --config"),
]


def test_help_and_usage_errors_answer_before_torch_is_imported(tmp_path):
    """Deterministic stand-in for 'in about a second': nothing heavy is imported."""
    code = f"""
import contextlib, io, json, sys
sys.path.insert(0, {str(REPO_ROOT)!r})
import train
results = []
for args in {[case[0] for case in FAST]!r}:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            train.main(args)
            status = 0
        except SystemExit as stop:
            status = stop.code
    results.append([status, out.getvalue(), err.getvalue()])
heavy = [m for m in ("torch", "pytorch_lightning", "matplotlib", "wandb") if m in sys.modules]
print(json.dumps(dict(results=results, heavy=heavy)))
"""
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert report["heavy"] == []
    for (args, status, text), (got, out, err) in zip(FAST, report["results"], strict=True):
        assert got == status, (args, out, err)
        if status == 0:
            assert out.startswith(text) and not err, (args, out, err)
        else:
            assert not out and text in one_error_line(err), (args, err)
    help_text = report["results"][0][1]
    for subcommand in ("fit", "validate", "test", "predict"):
        assert f"\n  {subcommand} " in help_text


def heading_lines(help_text: str) -> list[str]:
    """The group headings of a jsonargparse help: unindented lines ending in a colon."""
    return [
        line[:-1]
        for line in help_text.splitlines()
        if line.endswith(":") and not line[0].isspace() and not line.startswith("usage")
    ]


def first_docstring_line(obj: object) -> str:
    return inspect.getdoc(obj).splitlines()[0]


def test_subcommand_help_headings_are_complete_sentences(capsys):
    from callbacks.predict import DeepulTrainer
    from callbacks.usage import GROUP_TITLES

    allowed = {
        *GROUP_TITLES.values(),
        first_docstring_line(DeepulTrainer).rstrip("."),
        first_docstring_line(DeepulTrainer.predict).rstrip("."),
        "options",
    }
    for subcommand in ("fit", "validate", "test", "predict"):
        code, out, _ = run_main([subcommand, "--help"], capsys)
        assert code == 0
        headings = heading_lines(out)
        assert len(headings) >= 6, headings
        assert set(headings) <= allowed, set(headings) - allowed
    for title in allowed - {"options"}:
        assert title.count("(") == title.count(")") and not title.startswith("("), title


def owned_classes() -> list[type]:
    """The classes of the callbacks package (all but the hooks and the prior fit), the CLI's and
    the data modules, whose first docstring line is a help heading."""
    import pytorch_lightning as pl

    import callbacks
    import datamodules  # noqa: F401  (the data modules the CLI offers)
    from callbacks.argument_names import offered_classes
    from callbacks.atomic_checkpoint_io import AtomicCheckpointIO
    from callbacks.csv_logger import MetricsCSVLogger, TrimMetricsOnResume
    from callbacks.figures import FitAndTestEndFigure
    from callbacks.predict import DeepulTrainer
    from callbacks.run_folder import RunConfig
    from callbacks.wandb_run import RunWandbLogger

    exported = [
        getattr(callbacks, n) for n, m in callbacks.EXPORTS.items() if m != "callbacks.prior_fit"
    ]
    data = [
        c
        for c in offered_classes(pl.LightningDataModule).values()
        if c.__module__.startswith("datamodules")
    ]
    mine = [AtomicCheckpointIO, MetricsCSVLogger, TrimMetricsOnResume, FitAndTestEndFigure]
    return [
        *[c for c in exported if isinstance(c, type)],
        *mine,
        DeepulTrainer,
        RunConfig,
        RunWandbLogger,
        *data,
    ]


@pytest.mark.parametrize("cls", owned_classes(), ids=lambda c: c.__name__)
def test_help_headings_of_owned_classes_are_complete_sentences(cls):
    import docstring_parser

    short = docstring_parser.parse(inspect.getdoc(cls)).short_description
    assert short == first_docstring_line(cls), "the heading is the first line only"
    assert short.endswith("."), f"{cls.__name__}: {short!r} is cut off"
    assert short.count("(") == short.count(")"), short


# ----------------------------------------------------------------------- 3. typos: one line
def best_match(name: str, names) -> str:
    return max(names, key=lambda n: difflib.SequenceMatcher(None, name.lower(), n.lower()).ratio())


def model_classes() -> list[str]:
    from ar_models.base import DensityModel
    from callbacks.argument_names import offered_classes

    return list(offered_classes(DensityModel))


@pytest.mark.parametrize(
    "extra, bad, wanted",
    [
        (["--model", "PixelCNNMAD"], "--model PixelCNNMAD", None),
        (["--data", "ColoredMNIST"], "--data ColoredMNIST", "closest: ColoredMNISTDataModule"),
        (["--model.init_args.n_categoriez", "3"], "n_categoriez", "closest: n_categories"),
        (["--trainer.max_epohcs", "3"], "--trainer.max_epohcs", "closest: max_epochs"),
        (["--trainer.max_epoch", "3"], "--trainer.max_epoch", "closest: max_epochs"),
        (["--trainer.max_epochs", "abc"], "--trainer.max_epochs abc", "expected int"),
    ],
)
def test_a_typo_is_one_line_naming_it_and_the_closest_names(tmp_path, capsys, extra, bad, wanted):
    args = ["fit", f"--config={WARMUP}", f"--trainer.default_root_dir={tmp_path}", *extra]
    code, _, err = run_main(args, capsys)
    line = one_error_line(err)
    assert code == 2 and bad in line, line
    wanted = wanted or f"closest: {best_match('PixelCNNMAD', model_classes())}"
    assert wanted in line, line
    assert not list(tmp_path.iterdir())  # nothing ran


def test_a_misspelt_argument_of_another_config_model_names_the_right_one(tmp_path, capsys):
    """Derived from the model of hw1/pixelcnn.yaml, whatever its arguments are called."""
    from callbacks.argument_names import arguments, import_object

    config = train.resolved_config(str(REPO_ROOT / "configs" / "hw1" / "pixelcnn.yaml"))
    cls = import_object(config["model"]["class_path"])
    name = next(a for a in arguments(cls) if len(a) >= 8 and a[-2] != a[-1])
    typo = name[:-2] + name[-1] + name[-2]
    args = ["fit", "--config=hw1/pixelcnn.yaml", f"--trainer.default_root_dir={tmp_path}"]
    code, _, err = run_main([*args, f"--model.init_args.{typo}=1"], capsys)
    line = one_error_line(err)
    assert code == 2 and f"{cls.__name__} takes no argument {typo}; closest: {name}" in line, line


# ----------------------------------------------------------------------- 4. evaluations, no config
def test_an_evaluation_without_any_config_says_what_to_give(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for subcommand in ("test", "validate", "predict"):
        code, _, err = run_main([subcommand, "--ckpt_path", "last"], capsys)
        line = one_error_line(err)
        assert code == 2 and "give the --config of the fit" in line
        assert "checkpoint file whose run folder holds config.yaml" in line
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run_main(
        ["test", "--ckpt_path=best", f"--trainer.default_root_dir={empty}"], capsys
    )
    assert code == 2 and f"the run folder {empty} holds no config.yaml" in one_error_line(err)


def test_a_truncated_checkpoint_gets_the_same_message_with_or_without_a_config(tmp_path, capsys):
    good = tmp_path / "good.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"n_categories": 100}}, good)
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(good.read_bytes()[:200])
    lines = []
    for config in ([], [f"--config={WARMUP}"]):
        code, _, err = run_main(["test", *config, f"--ckpt_path={truncated}"], capsys)
        assert code == 2
        lines.append(one_error_line(err))
    assert lines[0] == lines[1]
    assert f"checkpoint {truncated} is incomplete or not a checkpoint" in lines[0]
    code, _, err = run_main(["validate", f"--ckpt_path={good}"], capsys)
    assert code == 2 and f"the run folder {tmp_path} holds no config.yaml" in one_error_line(err)


# ----------------------------------------------------------------------- 5. predict
def test_predict_sets_up_and_tears_down_the_model_and_names_its_seed(
    short_fit, tmp_path, caplog, monkeypatch
):
    from ar_models import Histogram

    run = copy_of(short_fit[0], tmp_path)
    calls = []
    setup, teardown, sample = Histogram.setup, Histogram.teardown, Histogram.sample

    def recording(name, method):
        def wrapper(self, *args, **kwargs):
            calls.append((name, args[:1]))
            return method(self, *args, **kwargs)

        return wrapper

    monkeypatch.setattr(Histogram, "setup", recording("setup", setup))
    monkeypatch.setattr(Histogram, "teardown", recording("teardown", teardown))
    monkeypatch.setattr(Histogram, "sample", recording("sample", sample))
    caplog.set_level(logging.INFO)
    train.main(
        ["predict", f"--ckpt_path={run / 'checkpoints' / 'last.ckpt'}", "--n=50", "--seed=1"]
    )
    assert calls == [("setup", ("predict",)), ("sample", (50,)), ("teardown", ("predict",))]
    output = caplog.text
    assert "Seed set to 0" not in output and "Seed set to 1" in output
    assert "(50 samples, each one int64 value)" in output and "shape ()" not in output
    assert "litmodels" not in output and "Tip:" not in output


# ----------------------------------------------------------------------- 6-8. the fit's files
def test_hparams_yaml_records_the_model_class(short_fit):
    hparams = yaml.safe_load((short_fit[0] / "hparams.yaml").read_text())
    assert hparams["_class_path"] == "ar_models.Histogram"
    assert hparams["n_categories"] == 100


def test_no_start_up_tip_of_lightning_cloud_packages(short_fit):
    from callbacks.run_defaults import not_a_tip

    output = short_fit[1].stdout + short_fit[1].stderr
    assert "litmodels" not in output and "litlogger" not in output
    tip = "💡 Tip: For seamless cloud uploads and versioning, try installing [litmodels](...)"
    assert not not_a_tip(logging.LogRecord("pl", logging.INFO, "", 0, tip, None, None))


def test_a_fit_shorter_than_an_epoch_warns_nothing_and_names_what_it_tested(short_fit):
    root, proc, _ = short_fit
    output = proc.stdout + proc.stderr
    assert "weights_only" not in output
    assert "could not find the monitored key" not in output
    results = json.loads((root / "results.json").read_text())
    assert results["checkpoint"] == str(root / "checkpoints" / "last.ckpt")
    assert "no validation ran, so there is no best checkpoint: testing" in output
    assert results["test/bpd"] > 0


# ----------------------------------------------------------------------- 9. exports
def test_every_callbacks_name_the_docs_use_is_exported():
    import importlib.util

    import callbacks

    texts = [p.read_text() for p in [*(REPO_ROOT / "docs").glob("*.md"), REPO_ROOT / "README.md"]]
    names = set()
    for text in texts:
        names.update(re.findall(r"\bcallbacks\.([A-Za-z_]\w*)\b(?!\.\w)", text))
        for group in re.findall(r"from callbacks import (\([^)]*\)|[^\n(]+)", text):
            names.update(n.strip(" ()\n") for n in group.split(",") if n.strip(" ()\n"))
    names = {n for n in names if importlib.util.find_spec(f"callbacks.{n}") is None}
    assert "SampleQualityMonitor" in names
    assert [n for n in sorted(names) if not hasattr(callbacks, n)] == []
    from callbacks import SampleQualityMonitor  # noqa: F401  (the import docs/sample_quality.md uses)


# ----------------------------------------------------------------------- 11. a second evaluation
def test_a_second_evaluation_moves_the_first_aside(short_fit, tmp_path, caplog):
    run = copy_of(short_fit[0], tmp_path)
    last = run / "checkpoints" / "last.ckpt"
    caplog.set_level(logging.INFO)
    for _ in range(2):
        train.main(["test", f"--ckpt_path={last}", "--trainer.enable_progress_bar=false"])
    names = sorted(p.name for p in (run / "eval").iterdir())
    assert names[0] == "last-test" and len(names) == 2
    assert re.fullmatch(r"last-test-\d{8}-\d{6}", names[1]), names
    for name in names:
        assert json.loads((run / "eval" / name / "results.json").read_text())["test/bpd"] > 0
    output = caplog.text
    assert (
        f"earlier test in {run / 'eval' / 'last-test'} moved to {run / 'eval' / names[1]}" in output
    )


# ----------------------------------------------------------------------- 12. evaluations in W&B
def offline_runs(run: Path) -> list[Path]:
    return sorted((run / "wandb").glob("offline-run-*"))


def test_evaluations_log_into_the_fits_wandb_run(short_fit, tmp_path):
    run, _, env = short_fit
    run = copy_of(run, tmp_path)
    last = str(run / "checkpoints" / "last.ckpt")
    fit_id = (run / "wandb" / "run-id").read_text().strip()
    fit_config = (run / "config.yaml").read_bytes()
    (fit_run,) = offline_runs(run)
    for args in (["test", f"--ckpt_path={last}"], ["predict", f"--ckpt_path={last}", "--n=20"]):
        proc = _run_cli([*args, "--trainer.enable_progress_bar=false"], env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
    fit_run, test_run, predict_run = offline_runs(run)
    assert [run_id(r) for r in (fit_run, test_run, predict_run)] == [fit_id] * 3
    assert (run / "wandb" / "run-id").read_text().strip() == fit_id
    assert (run / "config.yaml").read_bytes() == fit_config  # each wrote into its eval folder
    assert (run / "eval" / "last-test" / "config.yaml").is_file()
    assert "test/bpd" in history_keys(test_run)
    assert "predict/samples._type" in history_keys(predict_run)
    assert run_name(fit_run) == "warmup"  # the evaluations set no name: the run keeps its own
    assert {run_name(r) for r in (test_run, predict_run)} <= {"", "warmup"}
    disabled = dict(env, WANDB_MODE="disabled")
    proc = _run_cli(["validate", f"--ckpt_path={last}"], env=disabled)
    assert proc.returncode == 0 and len(offline_runs(run)) == 3


def test_an_evaluation_of_a_fit_without_wandb_starts_a_run_named_after_it(short_fit, tmp_path):
    run, _, env = short_fit
    run = copy_of(run, tmp_path)
    shutil.rmtree(run / "wandb")
    proc = _run_cli(["test", f"--ckpt_path={run / 'checkpoints' / 'last.ckpt'}"], env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (test_run,) = offline_runs(run)
    assert run_name(test_run) == f"{run.name}-test"
    assert "test/bpd" in history_keys(test_run)
    assert not (run / "wandb" / "run-id").exists()  # the id file stays the fit's


# ----------------------------------------------------------------------- 13. the notebook command
def test_the_documented_notebook_command_writes_into_an_ignored_folder():
    text = (REPO_ROOT / "docs" / "notebooks.md").read_text()
    targets = re.findall(r"nbformat\.write\(nb, '([^']+)'\)", text)
    assert targets, "no nbformat.write command in docs/notebooks.md"
    for target in targets:
        assert not Path(target).parent == Path("."), target
        ignored = subprocess.run(["git", "check-ignore", "-q", target], cwd=REPO_ROOT)
        assert ignored.returncode == 0, f"{target} is not ignored by git"
