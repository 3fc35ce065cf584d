"""ClassConditionalGrid: one row per class from sample(n, y=...), seeded, the PNGs it writes, the
per-row agreement on real digits (logged with the test metrics), and that it refuses an
unconditional model."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from ar_models.gated_pixelcnn import GatedPixelCNN
from callbacks.class_grid import ClassConditionalGrid
from datamodules.colored_mnist import ColoredMNISTDataModule


def labelled_loader(n: int = 8, side: int = 6) -> torch.utils.data.DataLoader:
    data = [(torch.randint(0, 4, (3, side, side)), torch.tensor(i % 3)) for i in range(n)]
    return torch.utils.data.DataLoader(data, batch_size=4)


def small_model(n_classes: int = 3) -> GatedPixelCNN:
    torch.manual_seed(0)
    return GatedPixelCNN(image_shape=(3, 6, 6), n_filters=8, n_layers=1, n_classes=n_classes)


def test_rows_are_the_asked_classes_and_the_draw_is_seeded() -> None:
    model = small_model()
    with torch.no_grad():  # distinct classes: make the label embeddings matter
        for layer in model.net.layers:
            layer.label_h.weight.normal_(0, 3.0)
    callback = ClassConditionalGrid(n_per_class=4, seed=5)
    state = torch.get_rng_state()
    (images, labels), (again, _) = callback.samples(model), callback.samples(model)
    assert torch.equal(torch.get_rng_state(), state) and model.training
    assert labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert images.shape == (12, 3, 6, 6) and torch.equal(images, again)
    model.eval()
    torch.manual_seed(5)
    with torch.no_grad():
        expected = model.sample(12, y=labels)
    assert torch.equal(images, expected)


def test_grid_pngs_during_and_after_fit_and_test(tmp_path: Path) -> None:
    callback = ClassConditionalGrid(every_n_epochs=1, n_per_class=2)
    trainer = pl.Trainer(
        default_root_dir=tmp_path,
        max_epochs=2,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[callback],
    )
    model = small_model()
    trainer.fit(model, train_dataloaders=labelled_loader())
    trainer.test(model, dataloaders=labelled_loader(4))
    figures = sorted(p.name for p in (tmp_path / "figures").iterdir())
    assert figures == ["class_samples.png", "class_samples_step2.png"]
    assert callback.agreement is None  # these data are not digits: nothing to read


def test_an_unconditional_model_is_refused(tmp_path: Path) -> None:
    trainer = pl.Trainer(
        default_root_dir=tmp_path,
        max_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        callbacks=[ClassConditionalGrid()],
    )
    with pytest.raises(ValueError, match="class-conditional model"):
        trainer.fit(small_model(n_classes=0), train_dataloaders=labelled_loader())


class DigitsOfClass(pl.LightningModule):
    """A stand-in conditional model: asked for class c, it returns real coloured digits of class
    (c + shift) mod 10 (so shift 0 agrees with what is asked, shift 1 never does)."""

    n_categories = 4
    n_classes = 10

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, shift: int) -> None:
        super().__init__()
        self.bank = [images[labels == c] for c in range(10)]
        self.shift = shift
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def sample(self, n: int, y: torch.Tensor) -> torch.Tensor:
        counts = [0] * 10
        out = []
        for label in y.tolist():
            c = (label + self.shift) % 10
            out.append(self.bank[c][counts[c]])
            counts[c] += 1
        return torch.stack(out)

    def test_step(self, batch, batch_idx: int) -> None:
        pass


@pytest.mark.parametrize("shift", [0, 1])
def test_agreement_reads_each_row_as_its_asked_class(shift: int, tmp_path: Path) -> None:
    """On real digits: rows of the asked class agree (>= 80% each on average, as the reader
    recognises most real digits), rows of another class agree nowhere. Logged with the test
    metrics."""
    data = ColoredMNISTDataModule(batch_size=50)
    data.setup("test")
    images, labels = data.test.x.long(), data.test.y
    callback = ClassConditionalGrid(n_per_class=10)
    trainer = pl.Trainer(
        default_root_dir=tmp_path,
        logger=False,
        limit_test_batches=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[callback],
    )
    (results,) = trainer.test(DigitsOfClass(images, labels, shift), datamodule=data)
    agreement = callback.agreement
    assert agreement.shape == (10,)
    if shift == 0:
        assert agreement.mean() >= 0.8 and agreement.min() >= 0.5
    else:
        assert agreement.max() == 0
    assert results["test/class_samples/agreement"] == pytest.approx(float(agreement.mean()))
    assert results["test/class_samples/agreement_3"] == pytest.approx(float(agreement[3]))
    assert (tmp_path / "figures" / "class_samples.png").is_file()
