"""GatedPixelCNN against PixelCNN-MADE on the embedded coloured MNIST, same step budget: test
bits/dim and sample quality, and the class-conditional quick config's per-digit agreement.

    python benchmarks/gated_quality.py [--root runs/gated_quality] [--arms made gated conditional]
                                       [--max-epochs 10] [--extra ARG ...]

Each arm is one ``train.py fit`` run (sequential, in a subprocess, with this interpreter), all on
the quick start's data (batch 4, 10 epochs: 9,000 steps) and its EMA of the weights:

* ``made``: ``configs/quickstart.yaml`` as it is (PixelCNN-MADE, 8 dilated blocks);
* ``gated``: the same config with the model replaced by ``GatedPixelCNN`` (``GATED`` below: 24
  filters, 5 gated layers of 3×3 after a 7×7 one, about the cost per training step of the
  quick start with 64 filters;
  the same MADE on a 64-number φ and the same palette codes);
* ``conditional``: ``configs/hw1/gated_pixelcnn_conditional_quick.yaml`` (class-conditional).

Every arm measures the tested (best) weights with the configs' ``SampleQualityMonitor`` (400
samples: the fraction recognised as digits, the entropy of their labels, the Fréchet distance of
the digit reader's features to the test images); the conditional arm also reads its class grid
(10 samples per digit: the fraction of row c recognised as c). Prints one table from the runs'
``results.json``; wall seconds are those of the whole run on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GATED = [
    "--model=ar_models.gated_pixelcnn.GatedPixelCNN",
    "--model.init_args.n_filters=24",
    "--model.init_args.n_layers=5",
    "--model.init_args.kernel_size=3",
    "--model.init_args.first_kernel=7",
]
ARMS = {
    "made": ["--config", "configs/quickstart.yaml"],
    "gated": ["--config", "configs/quickstart.yaml", *GATED],
    "conditional": ["--config", "configs/hw1/gated_pixelcnn_conditional_quick.yaml"],
}


def run_arm(name: str, args: list[str], root: Path, extra: list[str]) -> tuple[dict, float]:
    """Train one arm into ``root/name``; its results.json and the wall seconds of the run."""
    folder = root / name
    command = [
        sys.executable,
        "train.py",
        "fit",
        *args,
        f"--trainer.default_root_dir={folder}",
        "--trainer.enable_progress_bar=false",
        *extra,
    ]
    print(f"[{name}] {' '.join(command[1:])}", flush=True)
    start = time.perf_counter()
    with open(root / f"{name}.log", "w") as log:
        subprocess.run(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=True)
    seconds = time.perf_counter() - start
    return json.loads((folder / "results.json").read_text()), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=ROOT / "runs" / "gated_quality")
    parser.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS))
    parser.add_argument("--max-epochs", type=int, default=10)
    parser.add_argument(
        "--extra", nargs=argparse.REMAINDER, default=[], help="more train.py arguments, all arms"
    )
    args = parser.parse_args()
    args.root.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("WANDB_MODE", "disabled")
    extra = [f"--trainer.max_epochs={args.max_epochs}", *args.extra]
    results = {name: run_arm(name, ARMS[name], args.root, extra) for name in args.arms}

    print(
        f"\n| arm ({args.max_epochs} epochs, batch 4) | test bits/dim | recognised "
        "| label entropy (bits) | Fréchet | wall s |"
    )
    print("|---|---|---|---|---|---|")
    for name, (r, seconds) in results.items():
        print(
            f"| {name} | {r['test/bpd']:.4f} | {r.get('test/recognised', float('nan')):.1%} "
            f"| {r.get('test/label_entropy', float('nan')):.2f} "
            f"| {r.get('test/frechet', float('nan')):.1f} | {seconds:.0f} |"
        )
    if "conditional" in results:
        r = results["conditional"][0]
        per_digit = [r[f"test/class_samples/agreement_{c}"] for c in range(10)]
        print("\n| digit asked for | " + " | ".join(map(str, range(10))) + " | mean |")
        print("|---" * 12 + "|")
        print(
            "| read as that digit | "
            + " | ".join(f"{a:.0%}" for a in per_digit)
            + f" | {r['test/class_samples/agreement']:.1%} |"
        )


if __name__ == "__main__":
    main()
