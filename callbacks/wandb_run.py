"""The W&B run of a run folder: offline without credentials, never a prompt, one W&B run per
training run.

* Mode: ``WANDB_MODE`` when set (``disabled`` attaches no W&B logger at all); else ``online`` with
  credentials (``WANDB_API_KEY`` or a ``~/.netrc`` entry for the W&B host), else ``offline``,
  announced in one line (upload later with ``wandb sync``).
* Identity: the W&B run id is kept in ``<run folder>/wandb/run-id``; a resumed fit passes it back
  and W&B continues that run (``resume="allow"``). Offline, each process writes its own
  ``wandb/offline-run-*`` folder under the same id, and ``wandb sync`` joins them into one run.
* Evaluations (``test``, ``validate``, ``predict`` of a checkpoint) log into the W&B run of the
  checkpoint's fit, continued by that id, and leave its config as it is; where the fit kept no id
  (W&B was off), into a new run named ``<run folder name>-<subcommand>``.
"""

from __future__ import annotations

import netrc
import os
import sys
from pathlib import Path
from typing import Any

from pytorch_lightning.loggers import WandbLogger
from pytorch_lightning.utilities import rank_zero_info

WANDB_PROJECT = "deepul-lightning"
ID_FILE = Path("wandb") / "run-id"


def wandb_mode() -> str:
    """``WANDB_MODE`` if set; else ``online`` with credentials (key or netrc), else ``offline``."""
    mode = os.environ.get("WANDB_MODE")
    if mode:
        return mode
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    try:
        host = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").split("://")[-1]
        if netrc.netrc().authenticators(host.split("/")[0]):
            return "online"
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        pass
    return "offline"


class RunWandbLogger(WandbLogger):
    """Lightning's ``WandbLogger`` for the W&B run of one run folder.

    With ``resume``, the id kept in ``<root>/wandb/run-id`` (:meth:`remember_id`) is passed back
    to W&B, which continues that run (``continues_run``). ``keeps_id=False`` (an evaluation)
    never writes the id file.
    """

    def __init__(
        self, root: str | Path, resume: bool, keeps_id: bool = True, **kwargs: Any
    ) -> None:
        self.id_file = Path(root) / ID_FILE
        self.keeps_id = keeps_id
        run_id = self.id_file.read_text().strip() if resume and self.id_file.is_file() else None
        self.continues_run = run_id is not None
        super().__init__(save_dir=str(root), id=run_id, **kwargs)
        # Lightning passes anonymous=None to wandb.init, which prints a deprecation warning that
        # users cannot act on; tests/cli/test_lightning_private.py guards this private attribute.
        getattr(self, "_wandb_init", {}).pop("anonymous", None)

    def remember_id(self) -> None:
        """Write the W&B run id into the run folder (rank zero; starts the W&B run)."""
        if not self.keeps_id:
            return
        self.id_file.parent.mkdir(parents=True, exist_ok=True)
        self.id_file.write_text(f"{self.experiment.id}\n")


def wandb_logger(
    root: str | Path, run_name: str | None, resume: bool, keeps_id: bool = True
) -> RunWandbLogger | None:
    """The W&B logger of the run folder ``root`` (None when ``WANDB_MODE=disabled``)."""
    mode = wandb_mode()
    if mode == "disabled":
        return None
    if mode == "offline" and "WANDB_MODE" not in os.environ:
        rank_zero_info(
            f"W&B: no credentials found, logging offline to {root}/wandb "
            "(upload later with `wandb sync`, or set WANDB_MODE)."
        )
    os.environ.setdefault("WANDB_SILENT", "true")
    return RunWandbLogger(
        root, resume, keeps_id, name=run_name, project=WANDB_PROJECT, offline=mode == "offline"
    )


def evaluation_wandb_logger(root: str | Path, subcommand: str) -> RunWandbLogger | None:
    """The W&B logger of an evaluation of a checkpoint of the run folder ``root``: the fit's own
    W&B run where ``<root>/wandb/run-id`` keeps its id, else a new run named
    ``<folder name>-<subcommand>``; None when ``WANDB_MODE=disabled``."""
    root = Path(root)
    continues = (root / ID_FILE).is_file()
    name = None if continues else f"{root.name}-{subcommand}"  # a continued run keeps its name
    return wandb_logger(root, name, resume=continues, keeps_id=False)


def finish_wandb(exit_code: int) -> None:
    """End the W&B run of this process, if any (its files are complete on disk afterwards)."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish(exit_code=exit_code)
