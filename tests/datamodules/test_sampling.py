"""The epoch sampler: deterministic per (seed, epoch), disjoint rank shares, resumable."""

import torch

from datamodules.base import EpochSampler, ResumableDataLoader


def shares(n: int, world: int, even: bool, epoch: int = 0) -> list[list[int]]:
    out = []
    for rank in range(world):
        sampler = EpochSampler(n, shuffle=True, seed=3, rank=rank, world=world, even=even)
        sampler.set_epoch(epoch)
        out.append(list(sampler))
        assert len(out[-1]) == len(sampler)
    return out


def test_training_shares_are_disjoint_and_equal():
    parts = shares(101, world=2, even=True)
    assert len(parts[0]) == len(parts[1]) == 50
    assert not set(parts[0]) & set(parts[1])


def test_evaluation_shares_cover_every_example_exactly_once():
    parts = shares(101, world=2, even=False)
    assert sorted(parts[0] + parts[1]) == list(range(101))


def test_order_depends_on_seed_and_epoch_only():
    assert shares(50, 1, True, epoch=2) == shares(50, 1, True, epoch=2)
    assert shares(50, 1, True, epoch=2) != shares(50, 1, True, epoch=3)


def test_loader_resumes_mid_epoch_with_the_remaining_batches():
    data = torch.arange(20)
    full = ResumableDataLoader(data, EpochSampler(20, True, 0), batch_size=3)
    full.sampler.set_epoch(4)
    batches = list(full)
    partial = ResumableDataLoader(data, EpochSampler(20, True, 0), batch_size=3)
    partial.sampler.set_epoch(4)
    iterator = iter(partial)
    first = [next(iterator), next(iterator)]
    state = partial.state_dict()
    assert state == {"epoch": 4, "batches_served": 2}
    resumed = ResumableDataLoader(data, EpochSampler(20, True, 0), batch_size=3)
    resumed.load_state_dict(state)
    rest = list(resumed)
    assert [b.tolist() for b in first + rest] == [b.tolist() for b in batches]
    assert list(resumed)[0].tolist() == batches[0].tolist()  # the next epoch starts afresh
