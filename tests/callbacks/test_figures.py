"""The picture of predicted samples: tiles in place, levels scaled, one kind per sample shape."""

import numpy as np
import pytest

from callbacks.figures import image_grid, samples_figure


def test_image_grid_puts_each_image_in_its_tile_scaled_to_unit_range():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 4, size=(5, 3, 2, 3))
    grid = image_grid(images, n_levels=4, ncols=2, pad=1)
    assert grid.shape == (3 * 3 - 1, 2 * 4 - 1, 3)
    for i, image in enumerate(images):
        r, c = divmod(i, 2)
        tile = grid[3 * r : 3 * r + 2, 4 * c : 4 * c + 3]
        assert np.array_equal(tile, image.transpose(1, 2, 0) / 3)
    assert np.all(grid[2, :, :] == 0.5)  # the separating line
    assert np.all(grid[6:, 4:] == 0.5)  # the empty sixth tile


@pytest.mark.parametrize(
    "samples",
    [
        np.zeros((6, 1, 4, 4), dtype=np.int64),
        np.zeros((6, 3, 4, 4), dtype=np.int64),
        np.array([[0, 1], [2, 3]]),
        np.array([[0.5, -1.0], [2.0, 0.1]]),
        np.array([0, 3, 3, 1]),
    ],
)
def test_each_sample_shape_gets_its_picture(samples):
    fig = samples_figure(samples, "Model: samples", n_levels=4)
    assert fig is not None and fig.get_suptitle() == "Model: samples"


def test_shapes_without_a_picture_get_none():
    assert samples_figure(np.zeros((2, 5, 4, 4), dtype=np.int64), "t", n_levels=4) is None
    assert samples_figure(np.zeros((3, 7)), "t") is None


def test_columns_are_headed_by_their_repeating_labels():
    samples = np.zeros((6, 3, 4, 4), dtype=np.int64)
    fig = samples_figure(samples, "t", n_levels=4, labels=np.array([0, 1, 2] * 2), ncols=3)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["0", "1", "2"]
