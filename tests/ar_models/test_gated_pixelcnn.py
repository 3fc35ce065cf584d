"""GatedPixelCNN: exact normalisation on tiny images, the autoregressive property by gradients and
perturbations, a receptive field with no blind spot, cached = full pass = naive sampling, labels
read by conditional models and checked, and labels ignored by every other model."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from scipy import stats

from ar_models.errors import ModelConfigError
from ar_models.gated_pixelcnn import GatedPixelCNN, GatedStepper
from ar_models.pixelcnn import PixelCNN
from ar_models.sampling import CropStepper, step_through
from callbacks.receptive_field import fresh_copy, input_gradient, nominal_field

SMALL = dict(n_filters=32, n_layers=2, made_hidden_sizes=(16, 16))
CODES = {
    "": dict(palette_codes=False),
    "-palette": dict(palette_codes=True),
}
VARIANTS: list[dict] = []
IDS: list[str] = []
for channel_model, n_classes, codes in itertools.product(("factorised", "made"), (0, 2), CODES):
    VARIANTS.append(dict(channel_model=channel_model, n_classes=n_classes, **CODES[codes]))
    IDS.append(f"{channel_model}-{'labels' if n_classes else 'nolabels'}{codes}")


def make(shape: tuple[int, int, int], seed: int = 0, scale: float = 0.3, **kw: object):
    """A float64 model in eval mode with every parameter redrawn N(0, scale²): the label
    embeddings start at zero, so the default initialisation would hide what labels change. (32
    filters: with a few, all ReLUs of the head can be off at a pixel by chance.)"""
    torch.manual_seed(seed)
    model = GatedPixelCNN(image_shape=shape, **{**SMALL, **kw}).double().eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator, dtype=p.dtype) * scale)
    return model


def labels_for(model: GatedPixelCNN, n: int, seed: int = 0) -> torch.Tensor | None:
    if not model.n_classes:
        return None
    return torch.randint(0, model.n_classes, (n,), generator=torch.Generator().manual_seed(seed))


def all_images(shape: tuple[int, int, int], k: int) -> torch.Tensor:
    states = torch.tensor(list(itertools.product(range(k), repeat=int(np.prod(shape)))))
    return states.view(-1, *shape)


# ---------------------------------------------------------------------- normalisation
@pytest.mark.parametrize("kw", VARIANTS, ids=IDS)
@pytest.mark.parametrize(
    "shape", [(1, 2, 2), (2, 2, 2), (3, 1, 2)], ids=lambda s: "x".join(map(str, s))
)
def test_probabilities_of_all_states_sum_to_one(kw: dict, shape: tuple) -> None:
    """Σ_x p(x [| y]) = 1 over all 4^(C·H·W) images (256, 65,536, 4,096), for every label of a
    conditional model; float64."""
    model = make(shape, **kw)
    images = all_images(shape, 4)
    for label in range(max(model.n_classes, 1)):
        with torch.no_grad():
            log_p = torch.cat(
                [
                    -model.nll(x, None if not model.n_classes else torch.full((len(x),), label))
                    for x in images.split(8192)
                ]
            )
        assert torch.logsumexp(log_p, 0).exp().item() == pytest.approx(1.0, abs=1e-10)


@pytest.mark.parametrize("kw", VARIANTS, ids=IDS)
def test_nll_is_the_sum_of_the_conditionals(kw: dict) -> None:
    """log p(x) equals the sum over pixels and channels of the log conditionals read from
    ``conditional_logits`` (3-channel 5×4 images, random labels)."""
    model = make((3, 5, 4), **kw)
    x = torch.randint(0, 4, (6, 3, 5, 4))
    for b in range(6):  # image b: its first 3b pixels background (the palette grows later)
        x[b].view(3, -1)[:, : 3 * b] = x[b, :, :1, 0]
    y = labels_for(model, 6)
    with torch.no_grad():
        log_cond = torch.log_softmax(model.conditional_logits(x, y=y), dim=-1)
        target = model.to_codes(x) if model.palette_codes else x  # palette: logits of the codes
        picked = log_cond.gather(-1, target.unsqueeze(-1)).squeeze(-1).sum(dim=(1, 2, 3))
        torch.testing.assert_close(-model.nll(x, y), picked)


# ---------------------------------------------------------------------- autoregressive property
def spatial_gradient(model: GatedPixelCNN, pixels: list[tuple[int, int]], y) -> torch.Tensor:
    """``[N, C, H, W]``: |∂ (random projection of the logits of every channel at pixel k) / ∂
    input| for target pixel k carried by batch element k (examples do not interact)."""
    c, h, w = model.image_shape
    x = torch.randint(0, model.n_categories, (len(pixels), c, h, w))
    x_in = model.embed(x).requires_grad_(True)
    logits = model.conditional_logits(x, x_in, y)  # [N, C, H, W, K]
    rows, cols = (torch.tensor(v) for v in zip(*pixels, strict=True))
    picked = logits[torch.arange(len(pixels)), :, rows, cols]
    (picked * torch.randn_like(picked)).sum().backward()
    return x_in.grad.abs().amax(dim=1)


@pytest.mark.parametrize("kw", VARIANTS, ids=IDS)
def test_every_pixel_reads_exactly_the_pixels_before_it_in_its_box(kw: dict) -> None:
    """On 9×9 images (R = 3 + 2 = 5): the logits at every pixel have a non-zero gradient with
    respect to every input pixel of the causal box and none anywhere else: nothing at or after
    the pixel, and no blind spot (the upper-right pixels inside the box ARE read)."""
    model = make((3, 9, 9), **kw)
    assert model.receptive_radius == 5
    pixels = [(r, c) for r in range(9) for c in range(9)]
    grad = spatial_gradient(model, pixels, labels_for(model, len(pixels))).numpy()
    for k, (r, c) in enumerate(pixels):
        box = nominal_field((9, 9), (r, c), 5)
        assert not grad[k][~box].any(), f"logits at {(r, c)} read pixels outside the box"
        assert (grad[k][box] > 0).all(), f"logits at {(r, c)} miss pixels of the box"


@pytest.mark.parametrize("kw", VARIANTS, ids=IDS)
def test_redrawing_the_future_leaves_the_conditionals_unchanged(kw: dict) -> None:
    """Exact (discrete) check: redrawing every value after pixel i (and pixel i too where its
    channels are independent: factorised) leaves the logits of all channels at i unchanged;
    changing channel c' of pixel i leaves the logits of channels <= c' there unchanged, and with
    the MADE changes some later one. With palette codes the check runs on the codes (a colour's
    code is a function of all its channels)."""
    model = make((3, 6, 5), **kw)
    c, h, w = model.image_shape
    y = labels_for(model, 1)

    def logits(z: torch.Tensor) -> torch.Tensor:
        if model.palette_codes:
            return model.channel_head.logits(z, model.features(model.one_hot(z), y))
        return model.conditional_logits(z, y=y)

    x = torch.randint(0, 4, (1, c, h, w))
    independent = kw["channel_model"] == "factorised"
    with torch.no_grad():
        base = logits(x)
        for i in range(0, h * w, 3):
            r, col = divmod(i, w)
            z = x.clone().view(1, c, h * w)
            start = i if independent else i + 1
            z[:, :, start:] = torch.randint(0, 4, z[:, :, start:].shape)
            out = logits(z.view(1, c, h, w))
            torch.testing.assert_close(out[0, :, r, col], base[0, :, r, col], rtol=0, atol=0)
            for changed in range(c):
                z = x.clone()
                z[0, changed, r, col] = (z[0, changed, r, col] + 1) % 4
                out = logits(z)
                same = slice(0, changed + 1)
                torch.testing.assert_close(
                    out[0, same, r, col], base[0, same, r, col], rtol=0, atol=0
                )
                if changed < c - 1 and kw["channel_model"] == "made":
                    assert (out[0, changed + 1 :, r, col] != base[0, changed + 1 :, r, col]).any()


@pytest.mark.parametrize("channel_model", ["factorised", "made"])
def test_default_configuration_has_no_blind_spot(channel_model: str) -> None:
    """The default size (128 filters, 12 layers after a 7×7 one, R = 15, 28×28) at its default
    initialisation: the conditional of x[14, 14, 0] reads every pixel of rows 0..13 (all columns:
    14 ± 15 covers the image) and of row 14 left of the target, and nothing else. The 12-block
    PixelCNN of the same radius misses most of the upper right (its blind spot)."""
    gated = fresh_copy(GatedPixelCNN(channel_model=channel_model))
    assert gated.receptive_radius == 15
    support = input_gradient(gated, (14, 14, 0)) > 0
    assert np.array_equal(support, nominal_field((28, 28), (14, 14), 15))
    blind = input_gradient(fresh_copy(PixelCNN()), (14, 14, 0)) > 0
    upper_right = np.s_[:14, 15:]
    assert support[upper_right].all() and not blind[upper_right].all()


def test_labels_change_the_conditionals() -> None:
    """A conditional model's logits depend on the label at every pixel (even the first)."""
    model = make((3, 4, 4), n_classes=3)
    x = torch.randint(0, 4, (1, 3, 4, 4)).repeat(3, 1, 1, 1)
    with torch.no_grad():
        logits = model.conditional_logits(x, y=torch.arange(3))
    for a, b in itertools.combinations(range(3), 2):
        assert (logits[a] - logits[b]).abs().amax(dim=(0, 3)).min() > 0


# ---------------------------------------------------------------------- cached pass and sampling
@pytest.mark.parametrize("kw", VARIANTS[::2], ids=IDS[::2])
def test_every_cached_step_equals_the_full_pass(kw: dict) -> None:
    model = make((3, 7, 6), first_kernel=5, **kw).float()
    x = torch.randint(0, 4, (3, 3, 7, 6))
    y = labels_for(model, 3)
    x_in = model.embed(x)
    with torch.no_grad():
        full = model.net(x_in, y)
    stepper = GatedStepper(model.net, len(x), *model.image_shape[1:], y)
    assert (step_through(stepper, x_in) - full).abs().max().item() < 1e-4


@pytest.mark.parametrize("n_classes", [0, 10])
def test_every_cached_step_equals_the_full_pass_default_size(n_classes: int) -> None:
    """The default size at its default initialisation (label embeddings redrawn), float32."""
    torch.manual_seed(0)
    model = GatedPixelCNN(n_classes=n_classes).eval()
    if n_classes:
        with torch.no_grad():
            for layer in model.net.layers:
                for embedding in (layer.label_h, layer.label_v):
                    if embedding is not None:
                        embedding.weight.normal_(0, 0.5)
    x = torch.randint(0, 4, (2, 3, 28, 28))
    y = torch.tensor([3, 7]) if n_classes else None
    x_in = model.embed(x)
    with torch.no_grad():
        full = model.net(x_in, y)
    stepper = GatedStepper(model.net, len(x), *model.image_shape[1:], y)
    assert (step_through(stepper, x_in) - full).abs().max().item() < 1e-4


@pytest.mark.parametrize("kw", VARIANTS, ids=IDS)
def test_cropped_pass_is_exact(kw: dict) -> None:
    """The naive sampler's pass on the crop around (r, c) equals the full output at (r, c)."""
    model = make((3, 10, 9), **kw)
    x_in = model.embed(torch.randint(0, 4, (2, 3, 10, 9)))
    y = labels_for(model, 2)
    stepper = CropStepper(lambda crop: model.net(crop, y), x_in, model.receptive_radius)
    with torch.no_grad():
        full = model.net(x_in, y)
        for r, c in itertools.product(range(10), range(9)):
            torch.testing.assert_close(stepper.step(r, c), full[:, :, r, c])


@pytest.mark.parametrize("kw", VARIANTS, ids=IDS)
def test_cached_and_naive_samplers_draw_the_same_images(kw: dict) -> None:
    model = make((3, 7, 6), first_kernel=5, **kw)  # float64
    y = labels_for(model, 5)
    draws = [
        model.sample(5, y=y, generator=torch.Generator().manual_seed(7), cached=cached)
        for cached in (True, False)
    ]
    assert draws[0].dtype == torch.long and draws[0].shape == (5, 3, 7, 6)
    assert draws[0].min() >= 0 and draws[0].max() <= 3
    assert torch.equal(draws[0], draws[1])


@pytest.mark.parametrize("channel_model", ["factorised", "made"])
def test_sampler_follows_the_model_given_a_label(channel_model: str) -> None:
    """Frequencies of 20,000 samples of 2-channel 1×2 images (256 states) asked for label 2 match
    p(x | y = 2) (chi-square), and differ from p(x | y = 0)."""
    model = make(
        (2, 1, 2), seed=3, scale=0.6, channel_model=channel_model, n_classes=3, n_filters=8
    )
    states = all_images((2, 1, 2), 4)
    with torch.no_grad():
        probs = {
            label: torch.exp(-model.nll(states, torch.full((256,), label))).numpy()
            for label in (0, 2)
        }
        samples = model.sample(
            20000, y=torch.full((20000,), 2), generator=torch.Generator().manual_seed(0)
        )
    index = (samples.view(-1, 4) * (4 ** torch.arange(3, -1, -1))).sum(1).numpy()
    counts = np.bincount(index, minlength=256)
    assert stats.chisquare(counts, probs[2] / probs[2].sum() * counts.sum()).pvalue > 1e-3
    assert stats.chisquare(counts, probs[0] / probs[0].sum() * counts.sum()).pvalue < 1e-6


def test_conditional_sample_without_labels_draws_the_classes_in_turn() -> None:
    model = make((3, 4, 4), n_classes=3)
    generator = torch.Generator().manual_seed(0)
    by_default = model.sample(7, generator=generator)
    generator = torch.Generator().manual_seed(0)
    explicit = model.sample(7, y=torch.tensor([0, 1, 2, 0, 1, 2, 0]), generator=generator)
    assert torch.equal(by_default, explicit)


# ---------------------------------------------------------------------- labels and batches
@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (torch.tensor([0, 3]), r"values in 0\.\.2, got values in 0\.\.3"),
        (torch.tensor([-1, 0]), r"got values in -1\.\.0"),
        (torch.tensor([[0], [1]]), r"integer tensor \[2\].*got shape \(2, 1\)"),
        (torch.tensor([0, 1, 2]), r"got shape \(3,\)"),
        (torch.tensor([0.0, 1.0]), "got torch.float32"),
        (torch.tensor([True, False]), "got torch.bool"),
        (None, "got none"),
    ],
)
def test_conditional_model_rejects_bad_labels(labels, message: str) -> None:
    model = GatedPixelCNN(image_shape=(3, 4, 4), n_classes=3, **SMALL)
    x = torch.randint(0, 4, (2, 3, 4, 4))
    with pytest.raises(ModelConfigError, match=message):
        model.nll(x, labels)
    if labels is not None:
        with pytest.raises(ModelConfigError, match="n_classes=3"):
            model.training_step((x, labels), 0)
        with pytest.raises(ModelConfigError, match="n_classes=3"):
            model.sample(2, y=labels)


def test_conditional_model_stops_on_a_batch_without_labels() -> None:
    model = GatedPixelCNN(image_shape=(3, 4, 4), n_classes=3, **SMALL)
    with pytest.raises(ModelConfigError, match="batch has no labels"):
        model.training_step(torch.randint(0, 4, (2, 3, 4, 4)), 0)


def test_unconditional_model_rejects_labels_given_to_nll() -> None:
    model = GatedPixelCNN(image_shape=(3, 4, 4), **SMALL)
    with pytest.raises(ModelConfigError, match="n_classes=0"):
        model.nll(torch.randint(0, 4, (2, 3, 4, 4)), torch.tensor([0, 1]))


def test_training_step_reads_the_labels() -> None:
    """The loss of a conditional model's step is that of nll(x, y) for the batch's own labels."""
    model = make((3, 4, 4), n_classes=3).float()
    x = torch.randint(0, 4, (4, 3, 4, 4))
    y = torch.tensor([0, 1, 2, 1])
    with torch.no_grad():
        loss = model.training_step((x, y), 0)
        other = model.training_step((x, (y + 1) % 3), 0)
        torch.testing.assert_close(loss, model.nll(x, y).mean() / model.n_dims)
    assert loss != other


def test_validation_reads_the_labels() -> None:
    """val/bpd of a conditional model is the exact mean of -log p(x | y) over labelled batches."""
    model = make((3, 4, 4), n_classes=3).float()
    x, y = torch.randint(0, 4, (5, 3, 4, 4)), torch.tensor([2, 0, 1, 1, 0])
    loader = torch.utils.data.DataLoader(list(zip(x, y, strict=True)), batch_size=2)
    trainer = pl.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    (result,) = trainer.validate(model, dataloaders=loader, verbose=False)
    with torch.no_grad():
        expected = model.nll(x, y).mean() / (model.n_dims * np.log(2))
    assert result["val/bpd"] == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize(
    "model",
    [
        GatedPixelCNN(image_shape=(3, 4, 4), **SMALL),
        PixelCNN(image_shape=(3, 4, 4), n_filters=8, n_layers=1),
        PixelCNN(image_shape=(3, 4, 4), n_filters=8, n_layers=1, channel_model="made"),
    ],
    ids=["GatedPixelCNN", "PixelCNN", "PixelCNNMADE"],
)
def test_models_that_ignore_labels_take_both_batch_forms(model: pl.LightningModule) -> None:
    x = torch.randint(0, 4, (3, 3, 4, 4))
    y = torch.tensor([7, 0, 99])  # any labels: never read
    with torch.no_grad():
        torch.testing.assert_close(model.training_step((x, y), 0), model.training_step(x, 0))
        torch.testing.assert_close(model.training_step([x, y], 0), model.training_step(x, 0))


# ---------------------------------------------------------------------- configuration
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(channel_model="rgb"), "channel_model"),
        (dict(kernel_size=4), "kernel_size"),
        (dict(first_kernel=1), "first_kernel"),
        (dict(n_layers=-1), "n_layers"),
        (dict(n_classes=-2), "n_classes"),
        (dict(n_filters=0), "n_filters"),
    ],
)
def test_bad_hyperparameters_stop_with_a_message(kwargs: dict, message: str) -> None:
    with pytest.raises(ModelConfigError, match=message):
        GatedPixelCNN(image_shape=(3, 4, 4), **{**SMALL, **kwargs})


def test_checkpoint_roundtrip(tmp_path) -> None:
    model = make((3, 5, 5), n_classes=4).float()
    trainer = pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.strategy.connect(model)
    path = tmp_path / "gated.ckpt"
    trainer.save_checkpoint(path)
    loaded = GatedPixelCNN.load_from_checkpoint(path).eval()
    x, y = torch.randint(0, 4, (2, 3, 5, 5)), torch.tensor([1, 3])
    with torch.no_grad():
        torch.testing.assert_close(loaded.nll(x, y), model.nll(x, y))


# ---------------------------------------------------------------------- configs
CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "hw1"


@pytest.mark.parametrize("name", ["gated_pixelcnn", "gated_pixelcnn_conditional_quick"])
def test_configs_run(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both configs parse and train a step through the CLI (the GPU-sized one on 2 images)."""
    from train import main

    monkeypatch.setattr(sys, "argv", ["train.py"])
    main(
        [
            "fit",
            "--config",
            str(CONFIGS / f"{name}.yaml"),
            f"--trainer.default_root_dir={tmp_path}",
            "--trainer.fast_dev_run=1",
            "--trainer.accelerator=cpu",
            "--trainer.enable_progress_bar=false",
            "--data.init_args.batch_size=2",
        ]
    )
    assert (tmp_path / "figures" / "loss_curves.png").is_file()
    assert (tmp_path / "figures" / "receptive_field.png").is_file()
