"""PixelVAE receptive-radius sweep: the quick config at several decoder radii, one table and a plot.

    OMP_NUM_THREADS=1 python benchmarks/pixelvae_radius_sweep.py [--radii 1 2 4 6] \
        [--config configs/hw3/pixelvae_quick.yaml] [--root runs/pixelvae_radius] [--plot PATH]

Each radius R is one ``python train.py fit --config <config>`` run with the decoder's receptive
radius set to R (``--model.init_args.receptive_radius=R``; the model lays the decoder out itself,
:func:`vae_models.pixel_decoder.layout`: a 3×3 first (type-A) kernel for R <= 3, else 5×5, then
gated 3×3 layers), everything else as in the config, into ``<root>/R<R>``. A radius whose
``results.json`` already exists is not trained again (delete the folder to rerun it). The table
has, per radius, the test bound (bits/dim), the KL (nats per image), the active units and the MI
estimate, the reconstruction accuracy and the share of samples recognised as digits (all from
``results.json``: the best checkpoint on the test split), the training steps (``metrics.csv``)
and the whole run's wall time (training, test and figures; a rough guide, only comparable between
runs on the same idle machine). The plot (``--plot``, default
``docs/figures/pixelvae_radius.png``) shows bound, KL and accuracy against R.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
D = 3 * 32 * 32
LN2 = math.log(2.0)


def train(config: Path, radius: int, run: Path) -> float:
    """Train one radius into ``run``; returns the wall time in seconds (0 when reused)."""
    if (run / "results.json").is_file():
        return 0.0
    command = [
        sys.executable,
        "train.py",
        "fit",
        "--config",
        str(config),
        f"--trainer.default_root_dir={run}",
        f"--model.init_args.receptive_radius={radius}",
        "--trainer.enable_progress_bar=false",
    ]
    start = time.perf_counter()
    subprocess.run(command, cwd=REPO, check=True)
    seconds = time.perf_counter() - start
    (run / "sweep_wall_seconds.txt").write_text(f"{seconds:.1f}\n")
    return seconds


def training_steps(run: Path) -> int:
    """The largest ``step`` in the run's metrics.csv."""
    with open(run / "metrics.csv") as f:
        steps = [int(float(row["step"])) for row in csv.DictReader(f) if row.get("step")]
    return max(steps) + 1 if steps else 0


def row_of(radius: int, run: Path) -> dict[str, float]:
    results = json.loads((run / "results.json").read_text())
    wall = run / "sweep_wall_seconds.txt"
    seconds = float(wall.read_text()) if wall.is_file() else math.nan
    steps = training_steps(run)
    return {
        "R": radius,
        "bpd": results["test/bpd"],
        "kl_nats": results["test/kl_bpd"] * D * LN2,
        "active_units": results.get("test/active_units", math.nan),
        "mi_nats": results.get("test/mi_nats", math.nan),
        "recon_accuracy": results.get("test/recon_accuracy", math.nan),
        "recognised": results.get("test/recognised", math.nan),
        "steps": steps,
        "wall_s": seconds,
    }


def print_table(rows: list[dict[str, float]]) -> None:
    print(
        "| R | test bits/dim | KL (nats/image) | active units | MI (nats) | recon accuracy "
        "| samples recognised | steps | wall s (whole run) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['R']} | {r['bpd']:.4f} | {r['kl_nats']:.1f} | {r['active_units']:.0f} "
            f"| {r['mi_nats']:.2f} | {r['recon_accuracy']:.3f} | {r['recognised']:.3f} "
            f"| {r['steps']} | {r['wall_s']:.0f} |"
        )


def plot(rows: list[dict[str, float]], path: Path) -> None:
    from matplotlib.figure import Figure

    radii = [r["R"] for r in rows]
    fig = Figure(figsize=(9, 3.2))
    axes = fig.subplots(1, 3)
    panels = [
        ("bpd", "test bound (bits/dim)"),
        ("kl_nats", "KL (nats per image)"),
        ("recon_accuracy", "reconstruction accuracy"),
    ]
    for ax, (key, label) in zip(axes, panels, strict=True):
        ax.plot(radii, [r[key] for r in rows], "o-")
        ax.set_xlabel("decoder receptive radius R")
        ax.set_title(label, fontsize=9)
        ax.set_xticks(radii)
    axes[2].set_ylim(0, 1)
    fig.suptitle("PixelVAE on the stand-in digits: what the latent carries vs the decoder's reach")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    print(f"plot: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--radii", type=int, nargs="+", default=[1, 2, 4, 6])
    parser.add_argument("--config", type=Path, default=REPO / "configs/hw3/pixelvae_quick.yaml")
    parser.add_argument("--root", type=Path, default=REPO / "runs/pixelvae_radius")
    parser.add_argument("--plot", type=Path, default=REPO / "docs/figures/pixelvae_radius.png")
    args = parser.parse_args()
    if min(args.radii) < 1:
        parser.error(f"radii must be at least 1, got {sorted(args.radii)}")
    rows = []
    for radius in sorted(args.radii):
        run = args.root / f"R{radius}"
        train(args.config, radius, run)
        rows.append(row_of(radius, run))
    print_table(rows)
    plot(rows, args.plot)


if __name__ == "__main__":
    main()
