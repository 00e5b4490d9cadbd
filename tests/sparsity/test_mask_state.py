"""Tests of the binary-mask mechanism shared by fixed-mask retraining and
the baselines: exact zeros, masked gradients and moments, mask updates."""

import pytest
import torch
from torch import nn

from espnet_msrs.sparsity.folding import binary_masks, folded_state_dict
from espnet_msrs.sparsity.mask_file import load_masks, save_masks
from espnet_msrs.sparsity.mask_state import MaskState
from espnet_msrs.sparsity.selection import MaskSelection, apply_masks
from tests.helpers.toy_models import ALL_WEIGHTS, Toy, set_logits


def _regression_model_and_masks(seed):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))
    gen = torch.Generator().manual_seed(seed)
    masks = {
        "0.weight": torch.rand(8, 6, generator=gen) < 0.6,
        "2.weight": torch.rand(3, 8, generator=gen) < 0.6,
    }
    return model, masks


def _step(model, optimizer, gen):
    x = torch.randn(16, 6, generator=gen)
    y = torch.randn(16, 3, generator=gen)
    optimizer.zero_grad()
    loss = (model(x) - y).square().mean()
    loss.backward()
    optimizer.step()


def test_sparse_mode_keeps_masked_weights_exactly_zero():
    model, masks = _regression_model_and_masks(5)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):  # dense steps: non-zero optimizer state everywhere
        _step(model, optimizer, gen)
    params = dict(model.named_parameters())
    hooks = MaskState(params, masks, zero_weights=True)
    for name, mask in masks.items():
        assert (params[name][~mask] == 0.0).all()
    start = {n: params[n].detach().clone() for n in masks}
    hooks.attach_optimizer(optimizer)
    for _ in range(100):
        _step(model, optimizer, gen)
    for name, mask in masks.items():
        w = params[name].detach()
        assert torch.equal(w[~mask], torch.zeros_like(w[~mask]))
        assert (w[mask] != start[name][mask]).all()
        assert (params[name].grad[~mask] == 0.0).all()
    hooks.remove()


def test_grad_masked_mode_masks_gradients_only():
    model, masks = _regression_model_and_masks(6)
    params = dict(model.named_parameters())
    start = {n: params[n].detach().clone() for n in masks}
    hooks = MaskState(params, masks, zero_weights=False)
    for name in masks:  # weights are not zeroed
        assert torch.equal(params[name], start[name])
    lr, wd = 1e-2, 0.1
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd)
    hooks.attach_optimizer(optimizer)  # a no-op in this mode
    _step(model, optimizer, torch.Generator().manual_seed(1))
    for name, mask in masks.items():
        grad = params[name].grad
        assert torch.equal(grad[~mask], torch.zeros_like(grad[~mask]))
        assert (grad[mask] != 0).any()
        # Decoupled weight decay is not a gradient: it still shrinks them.
        torch.testing.assert_close(
            params[name][~mask], start[name][~mask] * (1 - lr * wd)
        )
    hooks.remove()
    optimizer.zero_grad()
    model(torch.randn(4, 6)).sum().backward()
    assert (params["0.weight"].grad[~masks["0.weight"]] != 0).any()


def test_mask_validation_names_the_key_and_the_weight():
    model, masks = _regression_model_and_masks(7)
    params = dict(model.named_parameters())
    with pytest.raises(ValueError, match="msrs_conf: mask '1.weight' names no selected"):
        MaskState(params, {"1.weight": torch.ones(8, 6, dtype=torch.bool)})
    with pytest.raises(ValueError, match="'2.weight' has shape \\(8, 3\\).*\\(3, 8\\)"):
        MaskState(params, {"2.weight": torch.ones(8, 3, dtype=torch.bool)})
    with pytest.raises(ValueError, match="'0.weight' must be a bool tensor"):
        MaskState(params, {"0.weight": torch.ones(8, 6)})
    state = MaskState(params, masks)
    with pytest.raises(ValueError, match="missing \\['2.weight'\\]"):
        state.set_masks({"0.weight": masks["0.weight"]})


def test_masks_from_search_drive_plain_retraining(tmp_path):
    """Search model -> saved binary masks -> plain model retrained sparse."""
    torch.manual_seed(8)
    search = Toy()
    apply_masks(search)
    set_logits(search, seed=9)
    save_masks(binary_masks(search), tmp_path / "masks.pt")
    masks = load_masks(tmp_path / "masks.pt")
    retrain = Toy()
    retrain.load_state_dict(folded_state_dict(search))
    hooks = MaskState(MaskSelection().select(retrain), masks)
    optimizer = torch.optim.AdamW(retrain.parameters(), lr=1e-2, weight_decay=0.1)
    hooks.attach_optimizer(optimizer)
    for _ in range(3):
        optimizer.zero_grad()
        retrain(torch.randn(2, 2, 7)).square().mean().backward()
        optimizer.step()
    params = dict(retrain.named_parameters())
    assert sorted(hooks.masks) == sorted(ALL_WEIGHTS)
    for name, mask in masks.items():
        assert (params[name][~mask] == 0.0).all()
        assert (params[name][mask] != 0.0).all()


def test_set_masks_zeroes_pruned_weights_and_moments_and_regrows_from_zero():
    model, masks = _regression_model_and_masks(11)
    params = dict(model.named_parameters())
    state = MaskState(params, masks)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    state.attach_optimizer(optimizer)
    gen = torch.Generator().manual_seed(3)
    for _ in range(3):
        _step(model, optimizer, gen)
    w = params["0.weight"]
    old = masks["0.weight"]
    new = old.clone()
    active = torch.nonzero(old.flatten()).flatten()[:4]
    inactive = torch.nonzero(~old.flatten()).flatten()[:3]
    new.view(-1)[active] = False  # prune 4
    new.view(-1)[inactive] = True  # grow 3
    moments = optimizer.state[w]
    assert (moments["exp_avg"].view(-1)[active] != 0).all()
    changed = state.set_masks({"0.weight": new, "2.weight": masks["2.weight"]})
    assert changed == {"pruned": 4, "grown": 3}
    assert torch.equal(state.masks["0.weight"], new)
    for key in ("exp_avg", "exp_avg_sq"):
        assert (moments[key].view(-1)[active] == 0).all()
        assert (moments[key].view(-1)[inactive] == 0).all()
    assert (w.view(-1)[active] == 0).all() and (w.view(-1)[inactive] == 0).all()
    assert state.sparsity() == pytest.approx(
        float((~new).sum() + (~masks["2.weight"]).sum()) / (48 + 24)
    )
    # regrown entries train again; newly pruned ones stay exactly 0.0
    for _ in range(5):
        _step(model, optimizer, gen)
    assert (w.view(-1)[inactive] != 0).all()
    assert (w.view(-1)[active] == 0).all()


def test_dense_gradient_on_request_then_masked_before_the_step():
    model, masks = _regression_model_and_masks(12)
    params = dict(model.named_parameters())
    want = {"dense": True}
    state = MaskState(params, masks, keep_dense_grad=lambda: want["dense"])
    model(torch.randn(4, 6)).sum().backward()
    grad = params["0.weight"].grad
    assert (grad[~masks["0.weight"]] != 0).any()  # the dense gradient
    state.mask_gradients()
    assert (params["0.weight"].grad[~masks["0.weight"]] == 0).all()
    want["dense"] = False
    model.zero_grad()
    model(torch.randn(4, 6)).sum().backward()
    assert (params["0.weight"].grad[~masks["0.weight"]] == 0).all()


def test_state_dict_round_trip_restores_masks_and_zeros():
    model, masks = _regression_model_and_masks(13)
    params = dict(model.named_parameters())
    state = MaskState(params, masks)
    saved = state.state_dict()
    assert all(m.dtype == torch.bool and m.device.type == "cpu"
               for m in saved["masks"].values())
    other_model, other_masks = _regression_model_and_masks(14)
    other = MaskState(dict(other_model.named_parameters()), other_masks)
    other.load_state_dict(saved)
    for name, mask in masks.items():
        assert torch.equal(other.masks[name], mask)
        assert (dict(other_model.named_parameters())[name][~mask] == 0).all()
    assert other.sparsity() == state.sparsity()


def _ranks_worker(rank, port, out):
    import torch.distributed as dist

    from espnet_msrs.sparsity.mask_state import check_same_on_ranks

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}",
                            rank=rank, world_size=2)
    try:
        results = []
        for differ in (False, True):
            masks = {"a.weight": torch.tensor([[True, False], [True, True]]),
                     "b.weight": torch.tensor([True, False, False])}
            if differ and rank == 1:  # same count, other position
                masks["b.weight"] = torch.tensor([False, True, False])
            try:
                check_same_on_ranks(masks, "rigl masks")
                results.append("same")
            except RuntimeError as e:
                results.append(str(e))
        torch.save(results, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_masks_are_checked_across_two_gloo_ranks(tmp_path):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ranks_worker, args=(port, str(tmp_path)), nprocs=2)
    for rank in (0, 1):
        same, differ = torch.load(tmp_path / f"rank{rank}.pt")
        assert same == "same"
        # every rank raises, naming the weight
        assert "rigl masks: the binary masks differ between DDP ranks" in differ
        assert "['b.weight']" in differ
