"""``--config`` names and the config of an evaluation, settled on the raw command line.

A ``--config`` value is a file, or the name of a config shipped with the package
(``hw1/warmup.yaml``, ``configs/hw1/warmup.yaml``). ``test``, ``validate`` and ``predict`` without
``--config`` read the ``config.yaml`` of the checkpoint's run folder. Nothing here imports torch:
the command line answers a bad name before it loads Lightning.
"""

from __future__ import annotations

import difflib
import importlib.resources
from pathlib import Path

from model_checkpoints import checkpoint_file_problem, run_folder

RUNS_DIR = "runs"
SUBCOMMANDS = ("fit", "validate", "test", "predict")
EVAL_SUBCOMMANDS = ("test", "validate", "predict")
CONFIG_FLAGS = ("-c", "--config")


def shipped_configs() -> Path | None:
    """The folder of the YAML configs shipped with the package (installed as ``deepul_configs``;
    the checkout's ``configs/`` when the package is not installed)."""
    try:
        folder = Path(str(importlib.resources.files("deepul_configs")))
    except ModuleNotFoundError:
        folder = Path(__file__).resolve().parents[1] / "configs"
    return folder if folder.is_dir() else None


def shipped_config_names() -> list[str]:
    """The shipped configs as ``--config`` takes them (``hw1/warmup.yaml``, ...), sorted."""
    shipped = shipped_configs()
    return sorted(str(p.relative_to(shipped)) for p in shipped.rglob("*.yaml")) if shipped else []


def looks_like_a_file(value: str) -> bool:
    """A ``--config`` value that names a file (not inline YAML)."""
    return value.endswith((".yaml", ".yml", ".json")) and "\n" not in value


def shipped_path(value: str) -> Path | None:
    """The shipped config that ``value`` names, or None."""
    shipped = shipped_configs()
    for name in (value, value.removeprefix("configs/")):
        if shipped is not None and (shipped / name).is_file():
            return shipped / name
    return None


def config_problem(value: str) -> str | None:
    """Why ``--config value`` names no file and no shipped config (None when it does)."""
    if Path(value).exists() or not looks_like_a_file(value) or shipped_path(value) is not None:
        return None
    names = shipped_config_names()
    wanted = value.removeprefix("configs/")
    same_file = [n for n in names if Path(n).name == Path(wanted).name]
    closest = same_file or difflib.get_close_matches(wanted, names, n=3, cutoff=0.8)
    hint = f"; closest: {', '.join(closest)}" if closest else ""
    return (
        f"--config {value}: no such file, neither from the working folder {Path.cwd()} nor among "
        f"the shipped configs ({shipped_configs()}){hint}; shipped: "
        f"{', '.join(names) or 'none installed'}"
    )


def usage_error(message: str) -> Exception:
    """A :class:`ar_models.errors.UsageError` (imported here: it loads the model packages)."""
    from ar_models.errors import UsageError

    return UsageError(message)


def resolve_config(value: str) -> str:
    """A ``--config`` value as given when it is an existing file (or inline YAML), else the shipped
    config of that name; a :class:`~ar_models.errors.UsageError` when it is neither."""
    problem = config_problem(value)
    if problem is not None:
        raise usage_error(problem)
    shipped = None if Path(value).exists() else shipped_path(value)
    return str(shipped) if shipped is not None else value


def option_value(args: list[str], option: str) -> str | None:
    """The last value of ``option`` on a command line (``--opt v`` or ``--opt=v``)."""
    value = None
    for i, arg in enumerate(args):
        if arg == option and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith(f"{option}="):
            value = arg.split("=", 1)[1]
    return value


def config_values(args: list[str]) -> list[str]:
    """Every ``-c``/``--config`` value on a command line, in order."""
    values = []
    for i, arg in enumerate(args):
        if arg in CONFIG_FLAGS and i + 1 < len(args):
            values.append(args[i + 1])
        for flag in ("-c=", "--config="):
            if arg.startswith(flag):
                values.append(arg[len(flag) :])
    return values


def subcommand_of(args: list[str]) -> str | None:
    """The first argument that is neither an option nor the value of a top-level ``--config``."""
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in CONFIG_FLAGS:
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


def asks_for_help(args: list[str]) -> bool:
    """``-h``, ``--help`` or a ``--<key>.help`` option."""
    return any(a in ("-h", "--help") or (a.startswith("--") and ".help" in a) for a in args)


def gives_model_and_data(args: list[str]) -> bool:
    """Both ``--model...`` and ``--data...`` options are on the command line."""
    return all(any(a.startswith(f"--{key}") for a in args) for key in ("model", "data"))


def run_config_of(ckpt_path: str | None, root: str | None) -> Path | None:
    """The ``config.yaml`` of the run a checkpoint belongs to (None if there is none)."""
    if ckpt_path in ("best", "last"):
        folder = Path(root) if root else None
    else:
        folder = run_folder(ckpt_path) if ckpt_path else None
    config = folder / "config.yaml" if folder is not None else None
    return config if config is not None and config.is_file() else None


def missing_config_problem(args: list[str]) -> str | None:
    """What a command line without ``--config`` lacks (None when it needs nothing): ``fit`` needs
    a config, or ``--model`` and ``--data``; an evaluation needs a readable checkpoint whose run
    folder holds ``config.yaml`` (or best/last of such a folder)."""
    subcommand = subcommand_of(args)
    if config_values(args) or asks_for_help(args) or gives_model_and_data(args):
        return None
    if subcommand == "fit":
        return (
            "fit needs a config: --config with a shipped config name (hw1/warmup.yaml, "
            "quickstart.yaml, ...) or a file, or --model and --data"
        )
    if subcommand not in EVAL_SUBCOMMANDS:
        return None
    ckpt_path = option_value(args, "--ckpt_path")
    give = (
        "give the --config of the fit (e.g. --config hw1/warmup.yaml), or a checkpoint file "
        "whose run folder holds config.yaml"
    )
    if ckpt_path is None:
        return f"{subcommand} needs --ckpt_path (a checkpoint file, or best/last); {give}"
    if ckpt_path in ("best", "last"):
        root = option_value(args, "--trainer.default_root_dir")
        if root is None:
            return f"{subcommand} --ckpt_path {ckpt_path} without --config: {give}"
    else:
        problem = checkpoint_file_problem(ckpt_path)
        if problem is not None:
            return problem
        root = str(run_folder(ckpt_path))
    if run_config_of(ckpt_path, root) is None:
        where = f"the run folder {root} holds no config.yaml"
        return f"{subcommand} --ckpt_path {ckpt_path}: {where}; {give}"
    return None


def prepare_args(args: list[str]) -> list[str]:
    """The command line with every ``--config`` name resolved (:func:`resolve_config`), and for
    ``test``/``validate``/``predict`` without a config the run folder's ``config.yaml``; a
    :class:`~ar_models.errors.UsageError` for a bad name or a missing config."""
    out: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in CONFIG_FLAGS and i + 1 < len(args):
            out += [arg, resolve_config(args[i + 1])]
            i += 2
            continue
        for flag in ("-c=", "--config="):
            if arg.startswith(flag):
                arg = flag + resolve_config(arg[len(flag) :])
        out.append(arg)
        i += 1
    problem = missing_config_problem(out)
    if problem is not None:
        raise usage_error(problem)
    subcommand = subcommand_of(out)
    if subcommand in EVAL_SUBCOMMANDS and not config_values(out):
        config = run_config_of(
            option_value(out, "--ckpt_path"), option_value(out, "--trainer.default_root_dir")
        )
        if config is not None:
            position = out.index(subcommand) + 1
            out[position:position] = ["--config", str(config)]
    return out
