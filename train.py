"""Train, test, validate or sample any model of this library from YAML configs (LightningCLI).

``deepul-train fit --config hw1/warmup.yaml``, ``deepul-train test --ckpt_path <file>``, ...: see
``docs/runs.md``. The help and the usage errors that need no model come before Lightning is
imported (:mod:`callbacks.usage`); :func:`cli_class` builds the CLI afterwards.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import io
import signal
import sys
import warnings
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
LIBRARY_PACKAGES = ("ar_models", "vae_models", "datamodules", "callbacks", "metrics")


def hiding_error(error: ImportError) -> ImportError:
    """``error``, or one naming the modules (a ``callbacks.py`` here, ...) hiding the library's."""
    hidden = []
    for name in LIBRARY_PACKAGES:
        file = getattr(sys.modules.get(name), "__file__", None)
        if name in sys.modules and (file is None or Path(file).resolve().parents[1] != HERE):
            hidden.append(f"{name} ({file or 'a folder without __init__.py'})")
    if not hidden:
        return error
    return ImportError(
        f"deepul-lightning's packages are hidden by modules of the same name: {', '.join(hidden)}. "
        "Python imported those instead (the working folder comes first on sys.path); rename them "
        f"or run from another folder ({error})"
    )


try:
    from callbacks.config_names import prepare_args, shipped_configs, subcommand_of  # noqa: F401 (train.shipped_configs)
    from callbacks.usage import early_answer, say, title_groups
except ImportError as error:
    raise hiding_error(error) from error


@functools.cache
def cli_class() -> type:
    """:class:`DeepulCLI`, defined on first use: Lightning, its base, takes seconds to import."""
    try:
        for package in ("ar_models", "vae_models", "datamodules", "callbacks"):
            importlib.import_module(package)  # registers the classes --model, --data, ... offer
        importlib.import_module("callbacks").import_all()
    except ImportError as error:
        raise hiding_error(error) from error
    import pytorch_lightning as pl
    from pytorch_lightning.cli import LightningCLI

    from ar_models.base import DensityModel
    from callbacks import run_folder
    from callbacks.argument_names import one_line_errors, parser_options
    from callbacks.predict import DeepulTrainer
    from callbacks.prior_fit import FitPrior
    from callbacks.run_defaults import trainer_additions

    class DeepulCLI(LightningCLI):
        """LightningCLI in subclass mode, with the run folders, loggers, callbacks and results of
        ``docs/runs.md``; unknown names are one-line errors."""

        def __init__(self, args: Any = None, **kwargs: Any) -> None:
            if args is None:
                sys.argv[1:] = prepare_args(sys.argv[1:])
            elif isinstance(args, list):
                args = prepare_args([str(a) for a in args])
            self.parsers: list[Any] = []  # the main parser, then one per subcommand
            kwargs["parser_kwargs"] = {"allow_abbrev": False, **kwargs.get("parser_kwargs", {})}
            super().__init__(
                DensityModel,
                pl.LightningDataModule,
                save_config_callback=run_folder.RunConfig,
                save_config_kwargs={"overwrite": True, "save_to_log_dir": False},
                trainer_class=DeepulTrainer,
                subclass_mode_model=True,
                subclass_mode_data=True,
                seed_everything_default=0,
                args=args,
                **kwargs,
            )

        def init_parser(self, **kwargs: Any) -> Any:
            self.parsers.append(super().init_parser(**kwargs))
            return self.parsers[-1]

        def setup_parser(self, *args: Any, **kwargs: Any) -> None:
            super().setup_parser(*args, **kwargs)
            for parser in self.parsers:
                title_groups(parser)

        def add_arguments_to_parser(self, parser: Any) -> None:
            """``prior_fit``: a :class:`callbacks.FitPrior` that a fit adds to its callbacks."""
            parser.add_subclass_arguments(FitPrior, "prior_fit", required=False)

        def run_name(self) -> str:
            return run_folder.run_name(self.config)

        def parse_arguments(self, parser: Any, args: Any) -> None:
            """Parse (bad names: one line), then settle the folders and check the checkpoint."""
            argv = [str(a) for a in (sys.argv[1:] if args is None else args)]
            subcommands, sub = list(self.subcommands()), subcommand_of(argv)
            chosen = self.parsers[1 + subcommands.index(sub)] if sub in subcommands else parser
            with one_line_errors(argv, parser_options(chosen), DeepulTrainer):
                super().parse_arguments(parser, args)
            if self.config.get("subcommand"):
                subcommand = self.config["subcommand"]
                run_folder.settle_folders(self.config[subcommand], subcommand, self.run_name())

        def instantiate_trainer(self, **kwargs: Any) -> pl.Trainer:
            config = self.config_init[self.subcommand]
            added = trainer_additions(self.subcommand, config, self.run_name(), self.model)
            return super().instantiate_trainer(**{**kwargs, **added})

        def before_fit(self) -> None:
            if not self._get(self.config_init, "ckpt_path"):  # a resumed fit continues in place
                run_folder.prepare_fresh_fit(self.trainer, self.datamodule)

        def after_fit(self) -> None:
            run_folder.evaluate_after_fit(self.trainer, self.model, self.datamodule)

        def before_evaluation(self) -> None:
            run_folder.set_aside_earlier_evaluation(self.trainer, self.subcommand)
            if self.subcommand == "predict":  # no Lightning loop saves its config: save it here
                run_folder.save_config_now(self.trainer, self.model, self.subcommand)

        def after_evaluation(self) -> None:
            ckpt_path = self.config[self.subcommand]["ckpt_path"]
            run_folder.evaluation_results(self.trainer, self.subcommand, ckpt_path)

        before_test = before_validate = before_predict = before_evaluation
        after_test = after_validate = after_evaluation

    DeepulCLI.__module__, DeepulCLI.__qualname__ = __name__, "DeepulCLI"
    return DeepulCLI


def __getattr__(name: str) -> Any:
    """``DeepulCLI`` (built on first use) and ``import_object`` (moved to a callbacks module)."""
    if name == "DeepulCLI":
        return cli_class()
    if name == "import_object":
        return importlib.import_module("callbacks.argument_names").import_object
    raise AttributeError(f"module 'train' has no attribute {name!r}")


def resolved_config(*configs: str, subcommand: str = "fit") -> dict[str, Any]:
    """The config that ``train.py <subcommand> --config A [--config B ...]`` would run, as a dict:
    shipped names resolved, nested ``config:`` bases loaded, defaults filled in (what
    ``--print_config`` prints). Nothing is instantiated."""
    args = [subcommand, *(arg for config in configs for arg in ("--config", config))]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.suppress(SystemExit):
        with warnings.catch_warnings():  # the caller's own sys.argv (a notebook kernel's) is moot
            warnings.filterwarnings("ignore", "LightningCLI's args parameter is intended")
            cli_class()(args=[*args, "--print_config"])
    return yaml.safe_load(printed.getvalue())


def main(args: Any = None) -> None:
    """Entry point; bad input ends with one line on stderr and exit status 2."""
    answer = early_answer([str(a) for a in (sys.argv[1:] if args is None else args)])
    if answer is not None:
        say(*answer)
    cli = cli_class()
    from pytorch_lightning.utilities.exceptions import SIGTERMException

    from ar_models.allocator import keep_freed_memory
    from callbacks.argument_names import user_error
    from callbacks.run_defaults import quiet_startup
    from callbacks.wandb_run import finish_wandb

    keep_freed_memory()  # faster CPU training: large freed tensors stay in the heap
    quiet_startup()
    try:
        cli(args=args)
    except SIGTERMException:  # Lightning's SystemExit with status 0: a stop is not a finish
        finish_wandb(exit_code=1)
        raise SystemExit(128 + signal.SIGTERM) from None
    except Exception as error:
        finish_wandb(exit_code=1)
        cause = user_error(error)
        if cause is None:
            raise
        print(f"error: {cause}", file=sys.stderr)
        raise SystemExit(2) from None
    finish_wandb(exit_code=0)


if __name__ == "__main__":
    main()
