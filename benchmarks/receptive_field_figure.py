"""The receptive field of PixelCNN and GatedPixelCNN at the same depth, side by side.

    python benchmarks/receptive_field_figure.py [--out PNG] [--depth 12] [--target 14 14 0]

(default PNG: docs/figures/receptive_field_pixelcnn_vs_gated.png)

Both models at the handout's size (128 filters, a 7×7 first layer, then ``--depth`` residual
blocks of 3×3 convs or gated layers of 3×3 kernels: receptive radius 3 + depth), freshly
initialised. Prints, per model, how many of the pixels before the target inside the nominal
receptive field the conditional reads (by its input gradient), and writes the figure.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ar_models.gated_pixelcnn import GatedPixelCNN  # noqa: E402
from ar_models.pixelcnn import PixelCNN  # noqa: E402
from callbacks.receptive_field import (  # noqa: E402
    comparison_figure,
    fresh_copy,
    input_gradient,
    nominal_field,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", type=Path, default=ROOT / "docs/figures/receptive_field_pixelcnn_vs_gated.png"
    )
    parser.add_argument(
        "--depth", type=int, default=12, help="blocks / gated layers after the first"
    )
    parser.add_argument(
        "--target", type=int, nargs=3, default=(14, 14, 0), metavar=("ROW", "COL", "CH")
    )
    args = parser.parse_args()
    target = tuple(args.target)
    models = {
        f"PixelCNN ({args.depth} masked residual blocks)": PixelCNN(n_layers=args.depth),
        f"GatedPixelCNN ({args.depth} gated layers)": GatedPixelCNN(n_layers=args.depth),
    }
    print("| model | receptive radius | earlier pixels in the field | read | blind |")
    print("|---|---|---|---|---|")
    for name, model in models.items():
        support = input_gradient(fresh_copy(model), target) > 0
        field = nominal_field(support.shape, target[:2], model.receptive_radius)
        seen = int((support & field).sum())
        print(
            f"| {name} | {model.receptive_radius} | {int(field.sum())} | {seen} "
            f"| {int(field.sum()) - seen} |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    comparison_figure(models, target).savefig(args.out, dpi=80, bbox_inches="tight")
    print(f"figure: {args.out}")


if __name__ == "__main__":
    main()
