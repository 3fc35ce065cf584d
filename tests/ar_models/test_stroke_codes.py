"""Stroke codes: S is an involution of the codes, causal, and on coloured digits leaves two codes
after the first stroke pixel; the per-channel conditionals match the joint they come from."""

from __future__ import annotations

import itertools

import torch

from ar_models.stroke_codes import (
    first_stroke,
    joint_values,
    swap_stroke_code,
    value_conditionals,
)
from datamodules.colored_mnist import ColoredMNISTDataModule


def test_first_stroke_by_hand() -> None:
    r = torch.zeros(3, 2, 2, 3, dtype=torch.long)
    r[0, 1, 1, 0] = 2  # raster index 3
    r[1, :, 0, 0] = 3  # pixel 0 only: no stroke after it
    r[2, 0, 0, 1] = 1
    r[2, 0, 1, 2] = 3
    index, code = first_stroke(r)
    assert index.tolist() == [3, 6, 1]
    assert code.tolist() == [[0, 2], [0, 0], [1, 0]]


def test_swap_is_an_involution_that_fixes_the_first_stroke_colour() -> None:
    r = torch.randint(0, 4, (200, 3, 4, 5))
    r[:100, :, :2] = 0  # later first strokes
    s = swap_stroke_code(r)
    assert torch.equal(swap_stroke_code(s), r)
    index, d = first_stroke(r)
    flat_r, flat_s = r.flatten(2), s.flatten(2)
    for b in range(200):
        f = int(index[b])
        assert torch.equal(flat_s[b, :, : f + 1], flat_r[b, :, : f + 1])  # up to f unchanged
        after_r, after_s = flat_r[b, :, f + 1 :].T, flat_s[b, :, f + 1 :].T
        is_d = (after_r == d[b]).all(dim=1)
        assert (after_s[is_d] == torch.tensor([0, 0, 1])).all()


def test_causal_each_code_depends_on_earlier_values_only() -> None:
    """Changing pixel j changes no code before j."""
    r = torch.randint(0, 4, (1, 3, 3, 3))
    r[:, :, 0, :2] = 0
    base = swap_stroke_code(r).flatten(2)
    for j in range(9):
        changed = r.clone().flatten(2)
        changed[:, :, j] = (changed[:, :, j] + 1) % 4
        out = swap_stroke_code(changed.view(1, 3, 3, 3)).flatten(2)
        assert torch.equal(out[:, :, :j], base[:, :, :j])


def test_coloured_digits_have_two_codes_after_the_first_stroke_pixel() -> None:
    data = ColoredMNISTDataModule()
    data.setup("test")
    x = data.test.x[:300].long()
    r = torch.remainder(x - x[:, :, :1, :1], 4)
    s = swap_stroke_code(r).flatten(2)
    index, _ = first_stroke(r)
    codes = set()
    for b in range(len(x)):
        codes |= {tuple(v) for v in s[b, :, int(index[b]) + 1 :].T.tolist()}
    assert codes == {(0, 0, 0), (0, 0, 1)}


def test_value_conditionals_are_those_of_the_joint() -> None:
    """For a random joint over the codes at every pixel: the product over channels of the
    conditionals of x's own values equals the joint probability of x's stroke code."""
    k, c = 3, 2
    x = torch.randint(0, k, (4, c, 3, 3))
    x[0, :, 0, 1:] = x[0, :, 0, :1]
    log_joint = torch.randn(4, 3, 3, k**c, dtype=torch.float64).log_softmax(-1)
    logits = value_conditionals(log_joint, x, k).log_softmax(-1)
    picked = logits.gather(-1, x[..., None])[..., 0].sum(dim=1)  # [B, H, W]
    r = torch.remainder(x - x[:, :, :1, :1], k)
    r[:, :, 0, 0] = x[:, :, 0, 0]
    s = swap_stroke_code(r)  # S of the relative codes, as the models use them
    index = (s * k ** torch.arange(c - 1, -1, -1)[:, None, None]).sum(dim=1)
    expected = log_joint.gather(-1, index[..., None])[..., 0]
    torch.testing.assert_close(picked, expected)
    values = joint_values(c, k, x.device)
    assert values.tolist() == [list(v) for v in itertools.product(range(k), repeat=c)]
