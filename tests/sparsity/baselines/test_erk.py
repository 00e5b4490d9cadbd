"""ERK densities (Evci et al. 2020) against the closed form, exact counts."""

import math

import pytest
import torch

from espnet_msrs.sparsity.baselines.erk import (
    erk_active_counts,
    erk_densities,
    random_masks,
)


def test_densities_follow_the_closed_form_without_dense_layers():
    shapes = {"lin": (64, 32), "conv": (16, 8, 3, 3), "conv1d": (32, 16, 5)}
    sparsity = 0.4
    numel = {n: math.prod(s) for n, s in shapes.items()}
    # d_l = ε (Σ dims)/(Π dims) with ε·Σ_l Σdims_l = (1 − S)·Σ N_l
    epsilon = (1 - sparsity) * sum(numel.values()) / sum(sum(s) for s in shapes.values())
    expected = {n: epsilon * sum(s) / numel[n] for n, s in shapes.items()}
    got = erk_densities(shapes, sparsity)
    assert got == pytest.approx(expected, rel=1e-12)
    # kernel dimensions count: conv's raw density is (16+8+3+3)/(16·8·9)
    assert got["conv"] / got["lin"] == pytest.approx((30 / 1152) / (96 / 2048))
    total = sum(got[n] * numel[n] for n in shapes)
    assert total == pytest.approx((1 - sparsity) * sum(numel.values()), rel=1e-12)


def test_layers_above_density_one_stay_dense_and_the_rest_is_rescaled():
    shapes = {"tiny": (2, 2), "mid": (10, 10), "big": (100, 100)}
    sparsity = 0.1  # ε·raw(tiny) = ε·1 would exceed 1
    got = erk_densities(shapes, sparsity)
    assert got["tiny"] == 1.0
    # raw densities 1, 0.2, 0.02. With all sparse ε = 0.9·10104/224 = 40.6:
    # tiny (ε·1) and, after solving again, mid (ε·0.2 = 8.3) exceed 1.
    assert (0.9 * 10104 - 4) / (0.2 * 100 + 0.02 * 10000) * 0.2 > 1
    assert got["mid"] == 1.0
    epsilon = (0.9 * 10104 - 104) / (0.02 * 10000)
    assert got["big"] == pytest.approx(epsilon * 0.02)
    total = sum(got[n] * math.prod(s) for n, s in shapes.items())
    assert total == pytest.approx(0.9 * 10104)


def test_counts_give_the_exact_global_sparsity():
    gen = torch.Generator().manual_seed(0)
    for sparsity in (0.0, 0.13, 0.4, 0.9, 0.99):
        shapes = {
            f"w{i}": tuple(int(d) for d in torch.randint(1, 40, (int(torch.randint(2, 5, (1,), generator=gen)),), generator=gen))
            for i in range(7)
        }
        shapes = {n: s if len(s) > 1 else s + (3,) for n, s in shapes.items()}
        total = sum(math.prod(s) for s in shapes.values())
        counts = erk_active_counts(shapes, sparsity)
        assert sum(counts.values()) == round((1 - sparsity) * total)
        densities = erk_densities(shapes, sparsity)
        for n, s in shapes.items():
            assert 0 <= counts[n] <= math.prod(s)
            assert abs(counts[n] - densities[n] * math.prod(s)) < 1.0 + 1e-9


def test_random_masks_have_exact_counts_and_follow_the_generator():
    shapes = {"a": (8, 8), "b": (4, 2, 3)}
    counts = {"a": 17, "b": 24}
    m1 = random_masks(shapes, counts, torch.Generator().manual_seed(5))
    m2 = random_masks(shapes, counts, torch.Generator().manual_seed(5))
    m3 = random_masks(shapes, counts, torch.Generator().manual_seed(6))
    assert {n: int(m.sum()) for n, m in m1.items()} == counts
    assert all(m.dtype == torch.bool and m.shape == shapes[n] for n, m in m1.items())
    assert all(torch.equal(m1[n], m2[n]) for n in shapes)
    assert not torch.equal(m1["a"], m3["a"])


@pytest.mark.parametrize(
    "shapes,sparsity,match",
    [
        ({}, 0.5, "empty"),
        ({"w": (4,)}, 0.5, "at least 2"),
        ({"w": (4, 4)}, 1.0, r"\[0, 1\)"),
        ({"w": (4, 4)}, -0.1, r"\[0, 1\)"),
    ],
)
def test_bad_input_raises(shapes, sparsity, match):
    with pytest.raises(ValueError, match=match):
        erk_densities(shapes, sparsity)
