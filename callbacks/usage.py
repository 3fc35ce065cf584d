"""The answers of the command line that need no torch: the top-level help, the version, and one
line for a missing or unknown subcommand, a bad ``--config`` name or a missing config.

:func:`early_answer` runs before Lightning is imported (which takes seconds), so these print at
once; everything else goes to the full LightningCLI parser.
"""

from __future__ import annotations

import configparser
import difflib
import importlib.metadata
import os
import sys
import textwrap
from pathlib import Path
from typing import Any, NoReturn

from callbacks.config_names import (
    SUBCOMMANDS,
    config_problem,
    config_values,
    missing_config_problem,
    shipped_config_names,
    subcommand_of,
)

#: what each subcommand does, for the top-level help
DESCRIPTIONS = {
    "fit": "train into the run folder (runs/<config name>), then test the best checkpoint",
    "validate": "evaluate a checkpoint on the validation split (into <run folder>/eval/)",
    "test": "evaluate a checkpoint on the test split (into <run folder>/eval/)",
    "predict": "draw samples from a checkpoint (into <run folder>/eval/)",
}


def program_name() -> str:
    """``train.py`` when run as that file, else ``deepul-train``."""
    return "train.py" if Path(sys.argv[0]).name == "train.py" else "deepul-train"


def top_level_help(prog: str) -> str:
    """The help of ``<prog> --help``."""
    subcommands = "\n".join(f"  {name:<10}{text}" for name, text in DESCRIPTIONS.items())
    configs = textwrap.fill(
        ", ".join(shipped_config_names()) or "none installed",
        width=96,
        initial_indent="  ",
        subsequent_indent="  ",
    )
    usage = f"usage: {prog} [-h] [--version] {{fit,validate,test,predict}} [--config CONFIG] ..."
    return f"""{usage}

Train, evaluate and sample the models of deepul-lightning from YAML configs.

subcommands ({prog} <subcommand> --help lists every option of one):
{subcommands}

options:
  -h, --help  show this help and exit
  --version   show the versions of deepul-lightning, PyTorch Lightning and torch and exit

examples:
  {prog} fit --config hw1/warmup.yaml --trainer.max_epochs 5
  {prog} test --ckpt_path runs/warmup/checkpoints/last.ckpt
  {prog} predict --ckpt_path runs/warmup/checkpoints/last.ckpt --n 64 --seed 1

--config takes a file or the name of a shipped config:
{configs}
"""


def version_text() -> str:
    """The versions of this library (a checkout's ``setup.cfg``, else the installed package's)
    and of what it runs on."""

    def version(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    setup = configparser.ConfigParser()
    setup.read(Path(__file__).resolve().parents[1] / "setup.cfg")
    own = setup.get("metadata", "version", fallback=None) or version("deepul-lightning")
    others = ", ".join(f"{n} {version(n)}" for n in ("pytorch-lightning", "torch", "jsonargparse"))
    return f"deepul-lightning {own} ({others})"


def subcommand_problem(subcommand: str | None, prog: str) -> str | None:
    """Why ``subcommand`` is not one (None when it is)."""
    names = ", ".join(SUBCOMMANDS)
    if subcommand is None:
        return f"give a subcommand: {names} ({prog} --help says what each does)"
    if subcommand in SUBCOMMANDS:
        return None
    closest = difflib.get_close_matches(subcommand, SUBCOMMANDS, n=2, cutoff=0.6)
    hint = f"; closest: {', '.join(closest)}" if closest else ""
    return f"unknown subcommand {subcommand!r}{hint} (the subcommands are {names})"


def say(status: int, text: str) -> NoReturn:
    """Print an early answer (stdout for status 0, else stderr) and exit with ``status``; a
    reader that stops early (``deepul-train --help | head``) is no error."""
    stream = sys.stdout if status == 0 else sys.stderr
    try:
        print(text, file=stream, flush=True)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())  # no error at exit either
    raise SystemExit(status)


def early_answer(args: list[str]) -> tuple[int, str] | None:
    """``(exit status, text)`` for a command line answered without Lightning: the top-level help
    or version (status 0), or one ``error: ...`` line (status 2); None for the full parser."""
    prog = program_name()
    subcommand = subcommand_of(args)
    before = args if subcommand is None else args[: args.index(subcommand)]
    if any(a in ("-h", "--help") for a in before):
        return 0, top_level_help(prog)
    if "--version" in before:
        return 0, version_text()
    if subcommand is None and any(a.startswith("--print_config") for a in before):
        return None  # the full parser prints the top-level config
    problem = subcommand_problem(subcommand, prog)
    for value in config_values(args):
        problem = problem or config_problem(value)
    problem = problem or missing_config_problem(args)
    return None if problem is None else (2, f"error: {problem}")


#: the headings of ``<subcommand> --help`` for the option groups of classes the CLI is built on
#: (jsonargparse adds the colon)
GROUP_TITLES = {
    "model": "The model: any concrete DensityModel (--model.help NAME lists its arguments)",
    "data": "The data: any LightningDataModule (--data.help NAME lists its arguments)",
    "optimizer": "An optimizer to use instead of the model's own Adam (optional)",
    "lr_scheduler": "A learning-rate scheduler for that optimizer (optional)",
    "fit": "The checkpoint to resume from (a file, or last of the run folder)",
    "validate": "The checkpoint to validate (a file, or best/last of the run folder)",
    "test": "The checkpoint to test (a file, or best/last of the run folder)",
    "prior_fit": "A fit of a VAE's prior to its posteriors at the end of training (FitPrior)",
}


def title_groups(parser: Any) -> None:
    """Give the option groups of a LightningCLI (sub)command parser the headings of
    :data:`GROUP_TITLES` (jsonargparse takes the first docstring line of the class, which is a
    cut-off sentence for Lightning's)."""
    for key, group in (getattr(parser, "groups", None) or {}).items():
        if key in GROUP_TITLES:
            group.title = GROUP_TITLES[key]
