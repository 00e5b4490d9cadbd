"""SET (Mocanu et al. 2018): constant active count, magnitude drop, random
regrowth only at inactive positions, reproducible draws."""

import pytest
import torch

from espnet_msrs.sparsity.baselines import SET


def _layer():
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 0, 0, 0, 0]], dtype=torch.bool)
    weight = torch.tensor(
        [[0.9, -0.01, 0.5, 0.3, 0.0, 0.0], [-0.02, 0.7, 0.0, 0.0, 0.0, 0.0]]
    )
    return weight, mask


def test_hand_made_drop_smallest_regrow_only_previously_inactive():
    weight, mask = _layer()
    set_ = SET(sparsity=0.5, drop_fraction=0.34, update_interval=1, seed=0)
    for seed in range(20):  # every draw: the same drops, growth among the 6 inactive
        set_.generator.manual_seed(seed)
        new = set_.update(1, 10, {"w": weight}, {"w": mask})["w"]
        # k = ⌊0.34·6⌋ = 2 smallest |θ|: -0.01 at (0,1), -0.02 at (1,0)
        assert not new[0, 1] and not new[1, 0]
        kept = mask.clone()
        kept[0, 1] = kept[1, 0] = False
        assert torch.equal(new & mask, kept)
        grown = new & ~mask
        assert int(grown.sum()) == 2
        assert int(new.sum()) == int(mask.sum())


def test_regrowth_is_random_and_follows_the_generator_state():
    weight, mask = _layer()
    a = SET(sparsity=0.5, drop_fraction=0.34, seed=1)
    draws = [a.update(1, 10, {"w": weight}, {"w": mask})["w"] for _ in range(12)]
    assert len({tuple(d.flatten().tolist()) for d in draws}) > 1
    # resume: a strategy restored from a state dict continues the same draws
    b = SET(sparsity=0.5, drop_fraction=0.34, seed=1)
    first = b.update(1, 10, {"w": weight}, {"w": mask})["w"]
    state = b.state_dict()
    nxt = b.update(1, 10, {"w": weight}, {"w": mask})["w"]
    c = SET(sparsity=0.5, drop_fraction=0.34, seed=99)
    c.load_state_dict(state)
    assert torch.equal(first, draws[0])
    assert torch.equal(c.update(1, 10, {"w": weight}, {"w": mask})["w"], nxt)


def test_active_count_constant_through_updates_and_schedule():
    gen = torch.Generator().manual_seed(0)
    weights = {"a": torch.randn(16, 12, generator=gen), "b": torch.randn(6, 4, 5, generator=gen)}
    set_ = SET(sparsity=0.7, update_interval=3, end_fraction=0.5, seed=2)
    masks = set_.initial_masks(weights)
    counts = {n: int(m.sum()) for n, m in masks.items()}
    steps = [t for t in range(1, 61) if set_.is_update_step(t, 60)]
    assert steps == list(range(3, 30, 3))
    assert not set_.wants_dense_grad(3, 60)
    for step in steps:
        w = {n: torch.randn(x.shape, generator=gen) * masks[n] for n, x in weights.items()}
        new = set_.update(step, 60, w, masks)
        assert {n: int(m.sum()) for n, m in new.items()} == counts
        for n in new:
            # only weights inactive before the update grow
            assert not bool((new[n] & ~masks[n] & masks[n]).any())
            assert int((new[n] & ~masks[n]).sum()) == int(0.3 * counts[n])
        masks = new


def test_dense_layer_is_left_alone():
    set_ = SET(sparsity=0.5, seed=0)
    mask = torch.ones(3, 3, dtype=torch.bool)
    new = set_.update(100, 1000, {"w": torch.randn(3, 3)}, {"w": mask})["w"]
    assert torch.equal(new, mask)


def test_bad_option():
    with pytest.raises(ValueError, match="drop_fraction"):
        SET(sparsity=0.4, drop_fraction=1.5)
