"""RigL (Evci et al. 2020): schedule, hand-made drop/grow, and agreement with
the independent ``rigl-torch`` implementation."""

import math

import pytest
import torch
from rigl_torch.RigL import RigLScheduler

from espnet_msrs.sparsity.baselines import RigL, build_strategy


def test_drop_fraction_at_step_t():
    rigl = RigL(sparsity=0.5, drop_fraction=0.3, update_interval=10, end_fraction=0.75)
    total = 400  # T_end = 300
    assert rigl.end_step(total) == 300
    for t in (0, 10, 75, 150, 230, 300):
        assert rigl.drop_fraction_at(t, total) == pytest.approx(
            0.3 / 2 * (1 + math.cos(math.pi * t / 300))
        )
    assert rigl.drop_fraction_at(0, total) == pytest.approx(0.3)
    assert rigl.drop_fraction_at(150, total) == pytest.approx(0.15)
    assert rigl.drop_fraction_at(300, total) == pytest.approx(0.0)
    updates = [t for t in range(1, total + 1) if rigl.is_update_step(t, total)]
    assert updates == list(range(10, 300, 10))
    assert rigl.wants_dense_grad(20, total) and not rigl.wants_dense_grad(21, total)


def test_hand_made_drop_smallest_and_grow_largest_gradient():
    # 2×5 layer, 6 active; at t = 0 the drop fraction is α: k = ⌊0.5·6⌋ = 3
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 0, 0]], dtype=torch.bool)
    weight = torch.tensor([[0.9, -0.1, 0.5, 0.0, 0.0], [-0.05, 0.7, 0.2, 0.0, 0.0]])
    grad = torch.tensor([[0.0, 9.0, 0.0, 0.3, 0.1], [0.0, 0.0, 0.0, 0.2, 5.0]])
    rigl = RigL(sparsity=0.5, drop_fraction=0.5, update_interval=1, end_fraction=1.0)
    new = rigl.update(0, 100, {"w": weight}, {"w": mask}, {"w": grad})["w"]
    # drop: |θ| smallest active = -0.05, -0.1, 0.2 → (1,0), (0,1), (1,2)
    # grow: largest |g| among inactive after the drop: 9.0 at (0,1) (just
    # dropped, may regrow), 5.0 at (1,4), 0.3 at (0,3)
    expected = torch.tensor([[1, 1, 1, 1, 0], [0, 1, 0, 0, 1]], dtype=torch.bool)
    assert torch.equal(new, expected)
    assert int(new.sum()) == int(mask.sum())


def test_active_count_constant_through_updates():
    gen = torch.Generator().manual_seed(0)
    weights = {
        "enc.w": torch.randn(32, 16, generator=gen),
        "conv.w": torch.randn(8, 4, 3, 3, generator=gen),
    }
    rigl = RigL(sparsity=0.6, update_interval=5, seed=1)
    masks = rigl.initial_masks(weights)
    counts = {n: int(m.sum()) for n, m in masks.items()}
    assert sum(counts.values()) == round(0.4 * sum(w.numel() for w in weights.values()))
    changed = 0
    for step in range(1, 101):
        if not rigl.is_update_step(step, 100):
            continue
        w = {n: torch.randn(x.shape, generator=gen) * masks[n] for n, x in weights.items()}
        g = {n: torch.randn(x.shape, generator=gen) for n, x in weights.items()}
        new = rigl.update(step, 100, w, masks, g)
        assert {n: int(m.sum()) for n, m in new.items()} == counts
        changed += sum(int((new[n] ^ masks[n]).sum()) for n in new)
        masks = new
    assert changed > 0


def test_agrees_with_rigl_torch():
    """Same layer, mask, weights and dense gradient: rigl-torch's
    ``RigLScheduler._rigl_step`` and ours pick the same drop/grow sets."""
    gen = torch.Generator().manual_seed(3)
    for step, seed in ((100, 0), (300, 1), (700, 2)):
        torch.manual_seed(seed)
        layer = torch.nn.Linear(24, 40, bias=False)
        optimizer = torch.optim.SGD(layer.parameters(), lr=0.1, momentum=0.9)
        oracle = RigLScheduler(
            layer, optimizer, dense_allocation=0.3, T_end=1000, delta=100,
            alpha=0.3, ignore_linear_layers=False,
        )
        mask = oracle.backward_masks[0].clone()
        weight = layer.weight.detach().clone() * mask  # masked weights are 0
        grad = torch.randn(weight.shape, generator=gen)
        with torch.no_grad():
            layer.weight.copy_(weight)
        oracle.backward_hook_objects[0].dense_grad = grad.clone()
        oracle.step = step
        layer.weight.grad = grad.clone()
        oracle._rigl_step()
        expected = oracle.backward_masks[0]

        ours = RigL(sparsity=0.7, drop_fraction=0.3, update_interval=100)
        # our T_end = 0.75·total: total chosen so that T_end = 1000
        new = ours.update(step, 4000 // 3 + 1, {"w": weight}, {"w": mask}, {"w": grad})
        assert ours.end_step(4000 // 3 + 1) == 1000
        assert int(expected.sum()) == int(mask.sum())
        assert int((expected ^ mask).sum()) > 0  # the oracle did change the mask
        assert torch.equal(new["w"], expected), f"step {step}"


def test_build_and_bad_options():
    rigl = build_strategy("rigl", sparsity=0.4, update_interval=7)
    assert isinstance(rigl, RigL) and rigl.update_interval == 7
    with pytest.raises(ValueError, match="unknown option"):
        build_strategy("rigl", sparsity=0.4, zeta=0.3)
    with pytest.raises(ValueError, match="needs 'sparsity'"):
        build_strategy("rigl")
    with pytest.raises(ValueError, match="not one of"):
        build_strategy("snip", sparsity=0.4)
    with pytest.raises(ValueError, match="update_interval"):
        RigL(sparsity=0.4, update_interval=0)
    with pytest.raises(ValueError, match="dense gradients"):
        RigL(sparsity=0.4).update(100, 1000, {"w": torch.ones(2, 2)},
                                  {"w": torch.ones(2, 2, dtype=torch.bool)})
