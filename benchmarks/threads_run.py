"""Whole ``train.py`` runs without any thread variable against ``OMP_NUM_THREADS=1``, side by side.

    python benchmarks/threads_run.py [--config configs/hw3/vae_data1_diagonal.yaml]
                                     [--repeats 2] [--markdown FILE] [-- extra train.py args]

Runs ``python train.py fit --config CONFIG`` alternately with the environment as it is but with
``OMP_NUM_THREADS`` and ``MKL_NUM_THREADS`` removed ("default") and with ``OMP_NUM_THREADS=1``,
``--repeats`` times each (default, 1, default, 1, ...), each into a fresh temporary run folder with
W&B disabled, and prints the wall and CPU seconds of each run, the medians and their ratio. The
target: default within 1.3× of ``OMP_NUM_THREADS=1``. Wall times mean something only on an
otherwise idle machine.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET = 1.3


def run_once(config: str, one_thread: bool, extra: list[str]) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one ``train.py fit`` run."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["WANDB_MODE"] = "disabled"
    if one_thread:
        env["OMP_NUM_THREADS"] = "1"
    with tempfile.TemporaryDirectory(prefix="threads_run-") as root:
        command = [
            sys.executable,
            "train.py",
            "fit",
            f"--config={config}",
            f"--trainer.default_root_dir={root}/run",
            "--trainer.enable_progress_bar=false",
            *extra,
        ]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"train.py failed ({result.returncode}):\n{result.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/hw3/vae_data1_diagonal.yaml")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    parser.add_argument("extra", nargs="*", help="more train.py arguments (after --)")
    args = parser.parse_args()

    results: dict[str, list[tuple[float, float]]] = {"default": [], "OMP_NUM_THREADS=1": []}
    lines = ["| run | threads | wall s | CPU s |", "|---|---|---|---|"]
    for repeat in range(args.repeats):
        for name, one_thread in (("default", False), ("OMP_NUM_THREADS=1", True)):
            wall, cpu = run_once(args.config, one_thread, args.extra)
            results[name].append((wall, cpu))
            lines.append(f"| {repeat + 1} | {name} | {wall:.1f} | {cpu:.1f} |")
            print(lines[-1], flush=True)
    medians = {name: statistics.median(w for w, _ in runs) for name, runs in results.items()}
    ratio = medians["default"] / medians["OMP_NUM_THREADS=1"]
    verdict = "within" if ratio <= TARGET else "NOT within"
    lines += [
        f"| median | default | {medians['default']:.1f} | |",
        f"| median | OMP_NUM_THREADS=1 | {medians['OMP_NUM_THREADS=1']:.1f} | |",
        "",
        f"{args.config}: default / OMP_NUM_THREADS=1 = {ratio:.2f} ({verdict} {TARGET}x)",
    ]
    table = "\n".join(lines)
    print("\n" + table)
    if args.markdown:
        args.markdown.write_text(table + "\n")


if __name__ == "__main__":
    main()
