"""GMP (Zhu & Gupta 2017): the cubic schedule and magnitude pruning."""

import pytest
import torch

from espnet_msrs.sparsity.baselines import GMP


def test_sparsity_at_step_t_follows_eq_1():
    gmp = GMP(sparsity=0.8, initial_sparsity=0.0, update_interval=10,
              start_fraction=0.1, end_fraction=0.6)
    total = 1000  # t0 = 100, n = 50, t0 + nΔt = 600
    assert gmp.schedule(total) == (100, 600)
    for t in (100, 110, 250, 420, 600):
        expected = 0.8 + (0.0 - 0.8) * (1 - (t - 100) / (50 * 10)) ** 3
        assert gmp.sparsity_at(t, total) == pytest.approx(expected)
    assert gmp.sparsity_at(50, total) == 0.0
    assert gmp.sparsity_at(350, total) == pytest.approx(0.8 - 0.8 * 0.5 ** 3)
    assert gmp.sparsity_at(900, total) == pytest.approx(0.8)
    updates = [t for t in range(1, total + 1) if gmp.is_update_step(t, total)]
    assert updates == list(range(100, 601, 10))


def test_layer_scope_prunes_each_layer_to_s_t_by_magnitude():
    weights = {"a": torch.arange(1.0, 21.0).reshape(4, 5), "b": -torch.arange(1.0, 9.0).reshape(2, 4)}
    gmp = GMP(sparsity=0.5, update_interval=1, end_fraction=1.0)
    masks = gmp.initial_masks(weights)
    assert all(bool(m.all()) for m in masks.values())
    total = 4  # t0 = 0, end = 4: s_2 = 0.5·(1 − 0.5³) = 0.4375
    new = gmp.update(2, total, weights, masks)
    assert int(new["a"].sum()) == round(0.5625 * 20)  # 11
    assert int(new["b"].sum()) == round(0.5625 * 8)  # 4 (4.5 rounds to even)
    # the kept ones are the largest |θ|
    assert torch.equal(new["a"].flatten(), torch.arange(20) >= 9)
    assert torch.equal(new["b"].flatten(), torch.arange(8) >= 4)
    # at the end exactly s_f; pruned weights never come back even if large now
    w2 = {n: w.clone() for n, w in weights.items()}
    w2["a"][0, 0] = 1e3
    final = gmp.update(4, total, w2, new)
    assert int(final["a"].sum()) == 10 and int(final["b"].sum()) == 4
    assert not final["a"][0, 0]


def test_global_scope_uses_one_threshold():
    weights = {"a": torch.full((2, 5), 0.1), "b": torch.full((2, 5), 1.0)}
    gmp = GMP(sparsity=0.5, update_interval=1, end_fraction=1.0, scope="global")
    new = gmp.update(4, 4, weights, gmp.initial_masks(weights))
    assert int(new["a"].sum()) == 0 and int(new["b"].sum()) == 10


def test_bad_scope():
    with pytest.raises(ValueError, match="scope"):
        GMP(sparsity=0.5, scope="block")
    with pytest.raises(ValueError, match="initial_sparsity"):
        GMP(sparsity=0.5, initial_sparsity=0.6)
