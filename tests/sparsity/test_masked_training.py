"""Tests of MaskedTraining: the sparse-training method of fixed-mask MSRS
retraining and of the Table 4 baselines, driven by a strategy."""

import json

import pytest
import torch
from torch import nn

from espnet_msrs.sparsity.fixed_masks import FixedMasks
from espnet_msrs.sparsity.mask_file import load_mask_metadata, load_masks, save_masks
from espnet_msrs.sparsity.masked_training import MaskedTraining
from espnet_msrs.sparsity.method_choices import build_sparse_method
from espnet_msrs.sparsity.selection import MaskSelection
from espnet_msrs.sparsity.sparse_method import STATE_KEY


class SwapStrategy:
    """Every 2nd step: drop the largest active |θ| of each weight, grow the
    inactive entry with the largest dense gradient (a hand-made RigL)."""

    def __init__(self):
        self.calls = []
        self.counter = 0

    def initial_masks(self, weights):
        masks = {}
        for name, w in weights.items():
            mask = torch.ones_like(w, dtype=torch.bool)
            mask.view(-1)[::2] = False
            masks[name] = mask
        return masks

    def is_update_step(self, step, total_steps):
        return step % 2 == 0

    def wants_dense_grad(self, step, total_steps):
        return step % 2 == 0

    def update(self, step, total_steps, weights, masks, grads):
        self.calls.append((step, total_steps, {n: g.clone() for n, g in grads.items()}))
        self.counter += 1
        new = {}
        for name, mask in masks.items():
            m = mask.clone().view(-1)
            active = torch.where(m, weights[name].abs().view(-1), -1.0)
            m[int(active.argmax())] = False
            inactive = torch.where(~mask.view(-1), grads[name].abs().view(-1), -1.0)
            m[int(inactive.argmax())] = True
            new[name] = m.view_as(mask)
        return new

    def final_masks(self, weights, masks):
        return {n: m.clone() for n, m in masks.items()}

    def state_dict(self):
        return {"counter": self.counter}

    def load_state_dict(self, state):
        self.counter = state["counter"]


def _setup(strategy, seed=0, zero_weights=True):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))
    method = MaskedTraining("swap", strategy, zero_weights=zero_weights)
    method.setup(model, MaskSelection(), seed=0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    method.attach_optimizers([optimizer])
    return model, method, optimizer


def _train(model, optimizer, steps, seed=0):
    gen = torch.Generator().manual_seed(seed)
    grads = []
    for _ in range(steps):
        optimizer.zero_grad()
        x = torch.randn(16, 6, generator=gen)
        model(x).square().mean().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
        optimizer.step()
    return grads


def test_strategy_updates_at_its_steps_with_dense_gradients():
    strategy = SwapStrategy()
    model, method, optimizer = _setup(strategy)
    method.start(model, steps_per_epoch=3, max_epoch=2)
    assert method.total_steps == 6
    initial = {n: m.clone() for n, m in method.mask_state.masks.items()}
    params = dict(model.named_parameters())
    for name, mask in initial.items():
        assert (params[name][~mask] == 0).all()
    _train(model, optimizer, 4)
    assert [c[0] for c in strategy.calls] == [2, 4] and method.steps == 4
    assert all(c[1] == 6 for c in strategy.calls)
    # the update saw dense gradients (inactive entries non-zero) ...
    assert (strategy.calls[0][2]["0.weight"][~initial["0.weight"]] != 0).any()
    masks = method.mask_state.masks
    for name, mask in masks.items():
        assert int(mask.sum()) == int(initial[name].sum())  # one dropped, one grown
        assert not torch.equal(mask, initial[name])
        assert (params[name][~mask] == 0).all()  # ... but only active ones moved
    assert method.mask_updates == 2
    assert float(method.loss_terms(model)[1]["sparsity"]) == pytest.approx(
        method.mask_state.sparsity())


def test_odd_steps_see_masked_gradients():
    strategy = SwapStrategy()
    model, method, optimizer = _setup(strategy)
    method.start(model, steps_per_epoch=10, max_epoch=1)
    grads = _train(model, optimizer, 1)  # step 1: not an update step
    mask = method.mask_state.masks["0.weight"]
    assert (grads[0]["0.weight"][~mask] == 0).all()


def test_resume_through_the_optimizer_state_equals_uninterrupted():
    model_a, method_a, optim_a = _setup(SwapStrategy())
    method_a.start(model_a, 4, 2)
    _train(model_a, optim_a, 6)
    model_b, method_b, optim_b = _setup(SwapStrategy())
    method_b.start(model_b, 4, 2)
    _train(model_b, optim_b, 3)
    saved_model = {k: v.clone() for k, v in model_b.state_dict().items()}
    saved_optim = optim_b.state_dict()
    assert saved_optim[STATE_KEY]["method"] == "swap"
    assert saved_optim[STATE_KEY]["state"]["steps"] == 3
    assert saved_optim[STATE_KEY]["state"]["strategy"] == {"counter": 1}
    model_c, method_c, optim_c = _setup(SwapStrategy(), seed=5)  # a fresh process
    method_c.start(model_c, 4, 2)
    model_c.load_state_dict(saved_model)
    optim_c.load_state_dict(saved_optim)
    assert method_c.steps == 3 and method_c.strategy.counter == 1
    gen = torch.Generator().manual_seed(0)  # replay a's batches 4..6
    for step in range(6):
        x = torch.randn(16, 6, generator=gen)
        if step < 3:
            continue
        optim_c.zero_grad()
        model_c(x).square().mean().backward()
        optim_c.step()
    for (name, a), b in zip(model_a.state_dict().items(), model_c.state_dict().values()):
        assert torch.equal(a, b), name
    for name in method_a.mask_state.masks:
        assert torch.equal(method_a.mask_state.masks[name], method_c.mask_state.masks[name])


def test_fixed_masks_from_file_sparse_and_grad_masked(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))
    gen = torch.Generator().manual_seed(1)
    masks = {"0.weight": torch.rand(8, 6, generator=gen) < 0.5}
    save_masks(masks, tmp_path / "mask.pth")
    start = model[0].weight.detach().clone()
    method, selection = build_sparse_method(
        {"mode": "grad_masked", "mask_file": str(tmp_path / "mask.pth")})
    method.setup(model, selection, seed=0)
    assert torch.equal(model[0].weight, start)  # grad_masked: weights kept
    model(torch.randn(4, 6)).sum().backward()
    assert (model[0].weight.grad[~masks["0.weight"]] == 0).all()
    model2 = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))
    method2, selection2 = build_sparse_method(
        {"mode": "sparse", "mask_file": str(tmp_path / "mask.pth")})
    method2.setup(model2, selection2, seed=0)
    assert (model2[0].weight[~masks["0.weight"]] == 0).all()
    with torch.no_grad():
        model2[0].weight.fill_(1.0)  # e.g. --init_param after build
    method2.start(model2, None, 3)
    assert (model2[0].weight[~masks["0.weight"]] == 0).all()
    bad = FixedMasks(str(tmp_path / "mask.pth"))
    with pytest.raises(ValueError, match="mask.pth: mask\\(s\\) \\['0.weight'\\] name no weight"):
        bad.initial_masks({"1.weight": torch.zeros(3, 8)})


def test_artifacts_in_the_common_report_format(tmp_path):
    model, method, optimizer = _setup(SwapStrategy())
    method.start(model, 2, 2)
    method.epoch_start(1)
    _train(model, optimizer, 2)
    method.epoch_start(2)
    _train(model, optimizer, 2)
    reason = method.end_training()
    assert reason == "max_epoch"
    report = method.write_artifacts(model, tmp_path, reason)
    on_disk = json.loads((tmp_path / "sparsity_report.json").read_text())
    assert on_disk == report
    assert report["method"] == "swap" and report["stop_reason"] == "max_epoch"
    assert report["training"]["steps"] == 4 and report["training"]["mask_updates"] == 2
    masks = load_masks(tmp_path / "mask.pth")
    assert set(masks) == {"0.weight", "2.weight"}
    zeros = sum(int((~m).sum()) for m in masks.values())
    assert report["prunable"]["zeros"] == zeros
    assert load_mask_metadata(tmp_path / "mask.pth")["method"] == "swap"
    assert (tmp_path / "sparsity_groups.png").read_bytes()[:4] == b"\x89PNG"
