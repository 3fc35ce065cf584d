from callbacks.loss_curves import y_limits


def test_y_range_leaves_out_the_first_steps_but_keeps_every_evaluation():
    train = [(i, 16.0 if i < 50 else 5.0 + 0.01 * (i % 7)) for i in range(2000)]
    history = {"train/bpd": train, "val/bpd": [(100, 4.5), (2000, 5.2)]}
    bottom, top = y_limits(history, "bpd")
    assert bottom < 4.5 and top > 5.2  # every validation point is shown
    assert top < 6.0  # the first steps at 16 bits/dim do not squash the axis


def test_no_history_gives_no_range():
    assert y_limits({}, "bpd") is None
