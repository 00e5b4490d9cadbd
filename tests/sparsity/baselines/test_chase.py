"""CHASE (Yin et al., NeurIPS 2023): UMM, channel removal on hand-made layers,
the soft memory bound and the exact budget."""

import math

import pytest
import torch

from espnet_msrs.sparsity.baselines import CHASE
from espnet_msrs.sparsity.baselines.chase import unmasked_mean_magnitude

P, C = "enc.ff.w_1.weight", "enc.ff.w_2.weight"


def test_unmasked_mean_magnitude_counts_inactive_entries_as_zero():
    weight = torch.tensor([[1.0, -2.0], [3.0, -4.0], [0.5, 0.5]])
    mask = torch.tensor([[1, 0], [1, 1], [0, 0]], dtype=torch.bool)
    assert unmasked_mean_magnitude(weight, mask).tolist() == [0.5, 3.5, 0.0]
    conv = torch.ones(2, 3, 2, 2)
    assert unmasked_mean_magnitude(conv, torch.ones_like(conv, dtype=torch.bool)).tolist() == [1.0, 1.0]


def _pair():
    # producer w_1: 4 hidden channels × 3 inputs; consumer w_2: 2 × 4 hidden
    w1 = torch.tensor([
        [0.9, 0.8, 0.7],   # UMM 0.8
        [0.1, 0.1, 0.1],   # UMM 0.1   (smallest)
        [0.5, 0.5, 0.5],   # UMM 0.5
        [0.3, 0.0, 0.0],   # UMM 0.1 with its inactive entries: 0.3/3
    ])
    m1 = torch.tensor([[1, 1, 1], [1, 1, 1], [1, 1, 1], [1, 0, 0]], dtype=torch.bool)
    w2 = torch.full((2, 4), 0.2)
    m2 = torch.ones(2, 4, dtype=torch.bool)
    return {P: w1, C: w2}, {P: m1, C: m2}


def test_channel_removal_on_a_hand_made_layer():
    weights, masks = _pair()
    chase = CHASE(sparsity=0.6, channel_sparsity=0.5, min_channel_ratio=0.0,
                  update_interval=10, channel_interval=10, channel_end=1.0)
    chase.resolve_channels({n: tuple(w.shape) for n, w in weights.items()})
    assert chase.channels == {P: C}
    total = 100
    # s_c(10) = 0.5·(1 − 0.9³) = 0.1355 → ⌊0.54⌋ = 0 channels: nothing yet
    assert chase.channel_sparsity_at(10, total) == pytest.approx(0.5 * (1 - 0.9 ** 3))
    assert chase.remove_channels(10, total, weights, masks) == []
    # s_c(50) = 0.4375 → ⌊1.75⌋ = 1: channel 1 (UMM 0.1, before channel 3's
    # equal 0.1 in index order); producer row and consumer column go
    assert chase.remove_channels(50, total, weights, masks) == [(P, 1)]
    allowed = chase.allowed(masks)
    assert allowed[P].tolist() == [[True] * 3, [False] * 3, [True] * 3, [True] * 3]
    assert allowed[C][:, 1].tolist() == [False, False] and int(allowed[C].sum()) == 6
    # at T_c: ⌊0.5·4⌋ = 2: channel 3 (UMM 0.1) goes next, not channel 2 (0.5)
    assert chase.remove_channels(100, total, weights, masks) == [(P, 3)]
    assert chase.removed[P].tolist() == [False, True, False, True]
    # in an update the removed entries are inactive, and never grow back even
    # where the gradient is largest
    grads = {P: torch.full((4, 3), 5.0), C: torch.full((2, 4), 5.0)}
    new = chase.update(100, total, weights, masks, grads)
    assert not new[P][[1, 3]].any() and not new[C][:, [1, 3]].any()
    assert sum(int(m.sum()) for m in new.values()) == chase.budget(new) == 8


def test_minimum_layer_limitation_and_removed_channels_never_regrow():
    gen = torch.Generator().manual_seed(0)
    weights = {
        "a.w_1.weight": torch.full((10, 4), 0.01),  # all channels small
        "a.w_2.weight": torch.randn(4, 10, generator=gen),
        "b.w_1.weight": torch.randn(10, 4, generator=gen).abs() + 1.0,
        "b.w_2.weight": torch.randn(4, 10, generator=gen),
    }
    chase = CHASE(sparsity=0.9, channel_sparsity=0.5, min_channel_ratio=0.6,
                  update_interval=5, channel_interval=5, channel_end=1.0,
                  exploration_end=0.5, seed=0)
    masks = chase.initial_masks(weights)
    total = 20
    for step in range(1, total + 1):
        if not chase.is_update_step(step, total):
            continue
        w = {n: x * masks[n] for n, x in weights.items()}
        # a huge gradient on every entry: growth would take removed ones if allowed
        g = {n: torch.full_like(x, 100.0) + torch.rand(x.shape, generator=gen) for n, x in weights.items()}
        masks = chase.update(step, total, w, masks, g)
        for producer, consumer in chase.channels.items():
            removed = chase.removed[producer]
            assert not masks[producer][removed].any()
            assert not masks[consumer][:, removed].any()
    # 10 of 20 channels removed; layer a keeps ⌊10·(1 − 0.5)·0.6⌋ = 3
    assert int(chase.removed["a.w_1.weight"].sum()) == 7
    assert int(chase.removed["b.w_1.weight"].sum()) == 3
    # exact budget at the end (t = 20 ≥ T_p = 10)
    assert sum(int(m.sum()) for m in masks.values()) == chase.budget(masks) == 16


def test_channel_removal_keeps_the_budget_reachable():
    weights = {
        "a.w_1.weight": torch.full((10, 4), 0.01),
        "a.w_2.weight": torch.ones(4, 10),
        "b.w_1.weight": torch.ones(10, 4),
        "b.w_2.weight": torch.ones(4, 10),
    }
    masks = {n: torch.ones_like(w, dtype=torch.bool) for n, w in weights.items()}
    # B = 0.7·160 = 112; a channel costs 4 + 4 entries: at most 6 can go
    chase = CHASE(sparsity=0.3, channel_sparsity=0.5, min_channel_ratio=0.0,
                  channel_interval=10, channel_end=1.0, update_interval=10)
    chase.resolve_channels({n: tuple(w.shape) for n, w in weights.items()})
    chase.remove_channels(10, 10, weights, masks)
    new = {n: masks[n] & a for n, a in chase.allowed(masks).items()}
    assert int(chase.removed["a.w_1.weight"].sum()) == 6
    assert int(chase.removed["b.w_1.weight"].sum()) == 0
    capacity = sum(int(a.sum()) for a in chase.allowed(new).values())
    assert capacity == 160 - 6 * 8 == chase.budget(new)


def test_soft_memory_bound_then_exact_budget():
    gen = torch.Generator().manual_seed(1)
    weights = {"x.w_1.weight": torch.randn(16, 8, generator=gen),
               "x.w_2.weight": torch.randn(8, 16, generator=gen)}
    n = 256
    chase = CHASE(sparsity=0.5, channel_sparsity=0.0, update_interval=10,
                  exploration_end=0.5, extra_density=0.1, seed=3)
    masks = chase.initial_masks(weights)
    assert sum(int(m.sum()) for m in masks.values()) == chase.budget(masks) == 128
    total = 100
    g = {k: torch.randn(v.shape, generator=gen) for k, v in weights.items()}
    w = {k: v * masks[k] for k, v in weights.items()}
    # t = 20 < T_p = 50: grow to r_t·N, r_t = 0.5 + 0.1·½(1 + cos(π·20/50))
    soft = chase.update(20, total, w, masks, g)
    r = 0.5 + 0.1 * 0.5 * (1 + math.cos(math.pi * 20 / 50))
    assert sum(int(m.sum()) for m in soft.values()) == round(r * n)
    assert chase.soft_bound_density(20, total) == pytest.approx(r)
    # the extra weights are gradient-grown: every grown |g| ≥ every ungrown
    # inactive |g|
    grown = torch.cat([g[k].abs()[soft[k] & ~masks[k]] for k in g])
    idle = torch.cat([g[k].abs()[~soft[k]] for k in g])
    assert grown.min() >= idle.max()
    # t = 60 ≥ T_p: back to exactly B, after pruning ⌈q_t·n⌉
    w = {k: torch.randn(v.shape, generator=gen) * soft[k] for k, v in weights.items()}
    exact = chase.update(60, total, w, soft, g)
    assert sum(int(m.sum()) for m in exact.values()) == 128
    # final_masks prunes a soft-bound state back to B by magnitude
    final = chase.final_masks(w, soft)
    assert sum(int(m.sum()) for m in final.values()) == 128
    kept = torch.cat([w[k].abs()[final[k]] for k in w])
    cut = torch.cat([w[k].abs()[soft[k] & ~final[k]] for k in w])
    assert kept.min() >= cut.max()


def test_state_dict_round_trip_and_no_channel_layer_error():
    weights, masks = _pair()
    grads = {n: torch.ones_like(w) for n, w in weights.items()}
    a = CHASE(sparsity=0.6, channel_sparsity=0.5, min_channel_ratio=0.0,
              channel_interval=10, channel_end=1.0, update_interval=10)
    a.initial_masks(weights)
    a.update(100, 100, weights, masks, grads)
    assert a.removed[P].any()
    b = CHASE(sparsity=0.6, channel_sparsity=0.5, min_channel_ratio=0.0,
              channel_interval=10, channel_end=1.0, update_interval=10)
    b.load_state_dict(a.state_dict())
    new = b.update(100, 100, weights, masks, grads)  # resolves channels from the masks
    assert torch.equal(b.removed[P], a.removed[P])
    assert not new[P][b.removed[P]].any()
    with pytest.raises(ValueError, match="multiple of update_interval"):
        CHASE(sparsity=0.3, update_interval=300, channel_interval=1000)
    with pytest.raises(ValueError, match="channel_pairs"):
        CHASE(sparsity=0.3).initial_masks({"enc.attn.linear_q.weight": torch.ones(4, 4)})
