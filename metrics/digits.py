"""Reading digit images: which digit, how sure, and whether it is recognisably a digit at all.

:func:`digit_reader` loads the classifier that ``benchmarks/train_digit_reader.py`` (in a checkout
of the repository, not installed) trains on the embedded MNIST training digits (shipped as
``metrics/digit_reader.pt``; where that file is missing, in a checkout it is trained once, several
minutes on a CPU, and cached in ``$DEEPUL_CACHE`` or ``~/.cache/deepul-lightning``). Nothing is
downloaded.

:meth:`DigitReader.read` reduces images ``LongTensor[B, 3, H, W]`` (H = W = 28, or 32 of which the
central 28×28 is read) to their foreground masks (:mod:`metrics.foreground`) and classifies them.
An image is **recognised** as a digit when all of these hold:

* the classifier's largest class probability is at least :data:`MIN_CONFIDENCE`;
* its features are typical of that class: Mahalanobis distance to the class mean within the
  99th percentile of held-out training digits (Lee et al. 2018, "A Simple Unified Framework for
  Detecting Out-of-Distribution Samples");
* the foreground is plausible for a digit: its share of the pixels within the range of the
  training digits, at least :data:`MIN_PURITY` of it in one colour, and at least
  :data:`MIN_BACKGROUND_SHARE` of the image background colour.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from metrics.digit_net import DigitNet
from metrics.foreground import foreground

SHIPPED_WEIGHTS = Path(__file__).with_name("digit_reader.pt")
#: The script that trains the reader: in a checkout of the repository only (not installed).
TRAINING_SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "train_digit_reader.py"
MIN_CONFIDENCE = 0.9
MIN_PURITY = 0.9
MIN_BACKGROUND_SHARE = 0.5
#: Side of the images the classifier reads; 32×32 images are cropped to their centre.
SIDE = 28


def cache_path() -> Path:
    """Where a classifier trained on this machine is kept."""
    root = os.environ.get("DEEPUL_CACHE") or Path.home() / ".cache" / "deepul-lightning"
    return Path(root) / "digit_reader.pt"


@dataclass
class DigitReading:
    """What the reader saw in each of B images.

    ``labels`` LongTensor[B] (argmax digit), ``confidence`` [B] (its softmax probability),
    ``recognised`` BoolTensor[B] (module docstring), ``features`` [B, F] (penultimate classifier
    features), ``masks`` [B, 1, 28, 28] (the foreground the classifier read)."""

    labels: Tensor
    confidence: Tensor
    recognised: Tensor
    features: Tensor
    masks: Tensor


def readable(images: Tensor) -> bool:
    """True for ``[B, 3, H, W]`` images the reader can read (H = W in {28, 32})."""
    return (
        images.dim() == 4
        and images.shape[1] == 3
        and images.shape[-1] == images.shape[-2]
        and images.shape[-1] in (SIDE, SIDE + 4)
    )


def crop(images: Tensor) -> Tensor:
    """The central 28×28 of ``[B, C, H, W]`` images with H = W in {28, 32}."""
    h, w = images.shape[-2:]
    if h != w or h not in (SIDE, SIDE + 4):
        raise ValueError(
            f"the digit reader reads 28×28 or 32×32 images, got {h}×{w} "
            f"(images of shape {tuple(images.shape)})"
        )
    margin = (h - SIDE) // 2
    return images[..., margin : margin + SIDE, margin : margin + SIDE]


class DigitReader:
    """A trained :class:`DigitNet` with its calibration (trained by
    ``benchmarks/train_digit_reader.py``)."""

    def __init__(self, payload: dict[str, Any], device: torch.device | str | None = None) -> None:
        self.device = torch.device(device or "cpu")
        self.net = DigitNet()
        self.net.load_state_dict(payload["state_dict"])
        self.net.to(self.device).eval()
        self.class_means = payload["class_means"].to(self.device, torch.float64)
        self.precision = payload["precision"].to(self.device, torch.float64)
        self.max_distance = float(payload["max_distance"])
        self.fraction_range = tuple(float(v) for v in payload["fraction_range"])
        self.meta = dict(payload.get("meta", {}))

    @torch.no_grad()
    def read(self, images: Tensor, n_levels: int) -> DigitReading:
        """Read images ``LongTensor[B, 3, H, W]`` in {0..n_levels-1} (module docstring)."""
        images = crop(images)
        readings = [self._read(chunk.to(self.device), n_levels) for chunk in images.split(1024)]
        return DigitReading(
            *(
                torch.cat([getattr(r, name) for r in readings])
                for name in DigitReading.__annotations__
            )
        )

    def _read(self, images: Tensor, n_levels: int) -> DigitReading:
        fg = foreground(images, n_levels)
        features = self.net.features(fg.mask)
        probs = F.softmax(self.net.head(features), dim=1)
        confidence, labels = probs.max(1)
        delta = features.double() - self.class_means[labels]
        distance = ((delta @ self.precision) * delta).sum(1).clamp(min=0).sqrt()
        low, high = self.fraction_range
        recognised = (
            (confidence >= MIN_CONFIDENCE)
            & (distance <= self.max_distance)
            & (fg.fraction >= low)
            & (fg.fraction <= high)
            & (fg.purity >= MIN_PURITY)
            & (fg.background_share >= MIN_BACKGROUND_SHARE)
        )
        return DigitReading(labels, confidence, recognised, features, fg.mask)


def training_script() -> ModuleType:
    """``benchmarks/train_digit_reader.py`` of the checkout this package runs from, as a module."""
    if not TRAINING_SCRIPT.is_file():
        raise FileNotFoundError(
            f"the digit reader's weights {SHIPPED_WEIGHTS} are missing, and so is its training "
            f"script {TRAINING_SCRIPT} (it is in a checkout of the repository only): reinstall "
            "the package, or run from a checkout"
        )
    spec = importlib.util.spec_from_file_location("train_digit_reader", TRAINING_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_payload() -> dict[str, Any]:
    """The shipped calibration payload, else the cached one, else one trained now (from a
    checkout) and cached."""
    for path in (SHIPPED_WEIGHTS, cache_path()):
        if path.is_file():
            return torch.load(path, map_location="cpu", weights_only=True)
    script = training_script()
    target = cache_path()
    print(
        f"sample-quality metric: {SHIPPED_WEIGHTS} is missing; training the digit classifier "
        f"once on the embedded MNIST digits (several minutes), cached in {target}"
    )
    payload = script.train_reader(verbose=True)
    script.save_payload(payload, target)
    return payload


@functools.cache
def _reader(device: str) -> DigitReader:
    return DigitReader(load_payload(), device)


def digit_reader(device: torch.device | str | None = None) -> DigitReader:
    """The digit reader on ``device`` (default CPU), loaded once per process and device."""
    return _reader(str(torch.device(device or "cpu")))
