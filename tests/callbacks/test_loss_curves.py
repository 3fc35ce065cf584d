from types import SimpleNamespace

from callbacks.loss_curves import (
    LossCurves,
    clipping_note,
    points_outside,
    quantity_name,
    y_limits,
)


def test_y_range_leaves_out_the_first_steps_but_keeps_every_evaluation():
    train = [(i, 16.0 if i < 50 else 5.0 + 0.01 * (i % 7)) for i in range(2000)]
    history = {"train/bpd": train, "val/bpd": [(100, 4.5), (2000, 5.2)]}
    bottom, top = y_limits(history, "bpd")
    assert bottom < 4.5 and top > 5.2  # every validation point is shown
    assert top < 6.0  # the first steps at 16 bits/dim do not squash the axis


def test_no_history_gives_no_range():
    assert y_limits({}, "bpd") is None


def test_points_outside_counts_the_clipped_training_points():
    train = [(i, 16.0 if i < 50 else 5.0 + 0.01 * (i % 7)) for i in range(2000)]
    history = {"train/bpd": train, "val/bpd": [(100, 4.5), (2000, 5.2)]}
    limits = y_limits(history, "bpd")
    below, above, total = points_outside(history, "bpd", limits)
    assert (below, above, total) == (0, 50, 2000)
    assert clipping_note(below, above, total) == (
        "y range clipped: 50 above of 2,000 training points not shown"
    )
    assert clipping_note(0, 0, 2000) == ""


class FakeVAE:
    extra_terms = ("kl", "recon")


def test_quantity_names_say_what_each_panel_shows():
    assert quantity_name("bpd", object()) == "negative log-likelihood"
    assert quantity_name("bpd", FakeVAE()) == "negative ELBO"
    assert quantity_name("kl_bpd", FakeVAE()) == "KL term"
    assert quantity_name("recon_bpd", FakeVAE()) == "reconstruction term"


def test_no_figure_without_training_history(tmp_path):
    """A test of a checkpoint alone records one test point: nothing worth a figure."""
    trainer = SimpleNamespace(
        is_global_zero=True,
        sanity_checking=False,
        lightning_module=FakeVAE(),
        default_root_dir=str(tmp_path),
        loggers=[],
    )
    curves = LossCurves()
    curves.history = {"test/bpd": [(10, 3.0)]}
    curves.draw(trainer)
    assert not (tmp_path / "figures").exists()
    curves.history["train/bpd"] = [(i, 3.0 + 1 / (i + 1)) for i in range(10)]
    curves.draw(trainer)
    assert (tmp_path / "figures" / "loss_curves.png").is_file()
