"""Tests of the MSRS mask search method (MSRS eqs. 3–8, Algorithm 1)."""

import pytest
import torch
from torch import nn

from espnet_msrs.sparsity.masked_layers import MaskedLinear
from espnet_msrs.sparsity.msrs_search import MSRSSearch
from espnet_msrs.sparsity.selection import MaskSelection, masked_modules
from espnet_msrs.sparsity.sparse_method import STATE_KEY


def _model(penalty=1e-3, seed=0, **kwargs):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 4))
    method = MSRSSearch(mask_penalty=penalty, **kwargs)
    method.setup(model, MaskSelection(), seed=0)
    return model, method


def _phi(model):
    return [m.mask_logits for m in masked_modules(model).values()]


def _set_sparsity(model, fraction):
    """Make exactly the first ``fraction`` of all mask entries negative."""
    phis = _phi(model)
    n_total = sum(p.numel() for p in phis)
    n = int(round(fraction * n_total))
    flat = torch.full((n_total,), 0.5)
    flat[:n] = -0.5
    with torch.no_grad():
        i = 0
        for p in phis:
            p.copy_(flat[i:i + p.numel()].view_as(p))
            i += p.numel()


def test_setup_masks_the_selection_with_eq3_options():
    model, method = _model(mu=2e-3, tau_forward=50.0)
    assert isinstance(model[0], MaskedLinear) and isinstance(model[2], MaskedLinear)
    assert model[0].tau_forward == 50.0 and model[0].mu == 2e-3
    assert method.num_mask_entries == 16 * 8 + 4 * 16
    assert method.logits == [model[0].mask_logits, model[2].mask_logits]


def test_loss_mode_term_is_lambda_sum_phi_and_its_gradient_is_lambda():
    model, method = _model(penalty=1e-3)
    term, stats = method.loss_terms(model)
    phi_sum = sum(p.sum() for p in _phi(model))
    assert term.dtype == torch.float32 and term.dim() == 0
    torch.testing.assert_close(term, 1e-3 * phi_sum)
    torch.testing.assert_close(stats["mask_penalty"], 1e-3 * phi_sum.detach())
    term.backward()
    for p in _phi(model):
        torch.testing.assert_close(p.grad, torch.full_like(p, 1e-3), rtol=0, atol=1e-12)


def test_zero_penalty_gives_no_term():
    model, method = _model(penalty=0.0)
    term, stats = method.loss_terms(model)
    assert term is None and float(stats["mask_penalty"]) == 0.0


def test_direct_mode_moves_phi_by_exactly_lambda_per_step_without_data_gradient():
    """MSRS eq. 5 read literally: φ ← φ − λ after each φ step, outside the lr."""
    lam = 2.5e-4
    model, method = _model(penalty=lam, penalty_mode="direct")
    term, stats = method.loss_terms(model)
    assert term is None  # not in the loss ...
    torch.testing.assert_close(stats["mask_penalty"],  # ... but still reported
                               lam * sum(p.sum() for p in _phi(model)).detach())
    theta = [p for n, p in model.named_parameters() if not n.endswith("mask_logits")]
    optimizers = [torch.optim.AdamW(theta, lr=1e-3),
                  torch.optim.AdamW(_phi(model), lr=1e-3, weight_decay=0.0)]
    method.attach_optimizers(optimizers)
    expected = [p.detach().clone() for p in _phi(model)]
    for _ in range(3):
        for p in _phi(model):
            p.grad = torch.zeros_like(p)  # the data gradient is zero
        optimizers[1].step()
        expected = [e - lam for e in expected]
        for p, e in zip(_phi(model), expected):
            assert torch.equal(p.detach(), e)
    start = [p.detach().clone() for p in _phi(model)]
    optimizers[0].step()  # the θ optimizer does not move φ
    assert all(torch.equal(p, s) for p, s in zip(_phi(model), start))


def test_direct_mode_in_float64_is_lambda_to_rounding():
    lam = 3e-7
    model, method = _model(penalty=lam, penalty_mode="direct")
    model.double()
    phi_opt = torch.optim.AdamW(_phi(model), lr=1e-3, weight_decay=0.0)
    method.attach_optimizers([torch.optim.SGD([nn.Parameter(torch.zeros(1))]), phi_opt])
    before = [p.detach().clone() for p in _phi(model)]
    for p in _phi(model):
        p.grad = torch.zeros_like(p)
    phi_opt.step()
    for p, b in zip(_phi(model), before):
        torch.testing.assert_close(b - p.detach(), torch.full_like(b, lam),
                                   rtol=0, atol=1e-18)


def test_statistics_match_the_logits():
    model, method = _model()
    _set_sparsity(model, 0.25)
    with torch.no_grad():
        _phi(model)[0][0, 0] = -3.0
        _phi(model)[1][0, 0] = 2.0
    flat = torch.cat([p.detach().flatten() for p in _phi(model)])
    stats = method.loss_terms(model)[1]
    assert stats["sparsity"] == pytest.approx(float((flat < 0).float().mean()))
    assert stats["phi_mean"] == pytest.approx(float(flat.mean()), abs=1e-6)
    assert stats["phi_std"] == pytest.approx(float(flat.std(unbiased=False)), abs=1e-5)
    assert stats["phi_min"] == -3.0 and stats["phi_max"] == 2.0
    assert method.count_pruned() == int((flat < 0).sum())


def _run_epochs(model, method, sparsities, max_epoch=10):
    """Epoch starts 1, 2, ... with the mask at ``sparsities[e]`` after epoch e;
    returns the epoch the method stopped before (or None)."""
    method.start(model, None, max_epoch)
    _set_sparsity(model, sparsities[0])
    for epoch, sparsity in enumerate(sparsities[1:], start=1):
        if method.epoch_start(epoch) is not None:
            return epoch
        _set_sparsity(model, sparsity)  # "training" of epoch `epoch`
    return None if method.epoch_start(len(sparsities)) is None else len(sparsities)


def test_a_mask_that_has_not_started_to_prune_does_not_stop():
    """0 → 0 → 0 → 0: |Δ| = 0 < ε every epoch, but nothing was pruned yet."""
    model, method = _model()
    assert _run_epochs(model, method, [0.0, 0.0, 0.0, 0.0]) is None
    assert method.history == [0.0] * 4 and not method.pruning_started
    assert method.end_training() == "stopped"  # ended before --max_epoch=10
    model, method = _model()
    _run_epochs(model, method, [0.0, 0.0, 0.0], max_epoch=3)  # trains epoch 3
    assert method.end_training() == "max_epoch"
    assert method.epochs == [0, 1, 2, 3]
    assert "never pruned beyond its sparsity at φ0" in method.stop_detail("max_epoch")


def test_a_pruning_mask_stops_when_its_change_is_below_epsilon():
    model, method = _model(epsilon=0.01)
    # s_0=0, s_1=0, s_2=0.3, s_3=0.305: stops before epoch 4
    assert _run_epochs(model, method, [0.0, 0.0, 0.3, 0.305]) == 4
    assert method.pruning_started and method.converged
    assert method.epochs == [0, 1, 2, 3]
    assert method.history[3] == pytest.approx(0.305, abs=0.005)
    assert method.end_training() == "converged"
    detail = method.stop_detail("converged")
    assert "< epsilon=0.01 from epoch 2 to 3" in detail
    summary = method.summary("converged")
    assert summary["final_epoch"] == 3 and summary["penalty_mode"] == "loss"


def test_the_initial_sparsity_at_phi0_does_not_count_as_pruning():
    """eq. 3 prunes |θ0| < e^-6 at φ0: a mask stuck there has not started."""
    model, method = _model()
    assert _run_epochs(model, method, [0.05, 0.05, 0.05, 0.05]) is None
    model, method = _model()
    assert _run_epochs(model, method, [0.05, 0.2, 0.205]) == 3


def test_min_search_epochs_delays_the_stop():
    model, method = _model(min_search_epochs=3)
    assert _run_epochs(model, method, [0.0, 0.2, 0.2, 0.2]) == 4
    model, method = _model(min_search_epochs=2)
    assert _run_epochs(model, method, [0.0, 0.2, 0.2, 0.2]) == 3


def test_state_round_trip_through_the_optimizer_state_dict():
    """The history rides in the θ optimizer's state dict (checkpoint.pth only)."""
    model, method = _model()
    theta = [p for n, p in model.named_parameters() if not n.endswith("mask_logits")]
    optimizers = [torch.optim.AdamW(theta), torch.optim.AdamW(_phi(model))]
    method.attach_optimizers(optimizers)
    _run_epochs(model, method, [0.0, 0.1, 0.3])
    saved = optimizers[0].state_dict()
    assert saved[STATE_KEY]["method"] == "search"
    assert saved[STATE_KEY]["state"]["zeros_history"] == method.zeros_history
    assert STATE_KEY not in model.state_dict()
    model2, method2 = _model(seed=1)
    theta2 = [p for n, p in model2.named_parameters() if not n.endswith("mask_logits")]
    optim2 = torch.optim.AdamW(theta2)
    method2.attach_optimizers([optim2, torch.optim.AdamW(_phi(model2))])
    optim2.load_state_dict(saved)
    assert method2.zeros_history == method.zeros_history
    assert method2.last_epoch == method.last_epoch
    with pytest.raises(ValueError, match="no sparse-training state"):
        optim2.load_state_dict(torch.optim.AdamW(theta2).state_dict())


def test_bad_options_raise_naming_the_key():
    with pytest.raises(ValueError, match="msrs_conf.mask_penalty"):
        MSRSSearch(mask_penalty=-1.0)
    with pytest.raises(ValueError, match="msrs_conf.epsilon"):
        MSRSSearch(epsilon=0.0)
    with pytest.raises(ValueError, match="msrs_conf.min_search_epochs"):
        MSRSSearch(min_search_epochs=0)
    with pytest.raises(ValueError, match="msrs_conf.penalty_mode='eq5'"):
        MSRSSearch(penalty_mode="eq5")
    model, method = _model()
    with pytest.raises(RuntimeError, match="recording epoch=3 after 0"):
        method.record(3)


# ------------------------------------------------- mixed precision findings
def _phi_grads(dtype=None, loss_scale=1e-6, grad_scale=None):
    """∂L/∂φ of a masked MLP whose loss is tiny (like late training)."""
    torch.manual_seed(0)
    model = nn.Sequential(MaskedLinear(64, 64), nn.Tanh(), MaskedLinear(64, 64))
    x = torch.randn(8, 64, generator=torch.Generator().manual_seed(1))
    autocast = torch.autocast(
        "cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None
    )
    with autocast:
        out = model(x)
    loss = out.float().square().mean() * loss_scale
    (loss * (grad_scale or 1.0)).backward()
    return model[0].mask_logits.grad / (grad_scale or 1.0), out.dtype


def test_fp16_without_loss_scaling_silently_zeroes_phi_gradients():
    ref, _ = _phi_grads(None)
    grad, out_dtype = _phi_grads(torch.float16)
    assert out_dtype == torch.float16 and grad.dtype == torch.float32
    assert bool(torch.all(ref != 0))
    assert bool(torch.all(grad == 0))  # the data term of eq. 5 vanished


def test_fp16_with_loss_scaling_and_bf16_keep_phi_gradients():
    ref, _ = _phi_grads(None)
    scaled, _ = _phi_grads(torch.float16, grad_scale=2.0 ** 16)
    bf16, out_dtype = _phi_grads(torch.bfloat16)
    assert out_dtype == torch.bfloat16
    for grad, tol in ((scaled, 2e-3), (bf16, 2e-2)):
        assert bool(torch.all(grad != 0))
        assert float((grad - ref).norm() / ref.norm()) < tol


def test_penalty_term_is_fp32_under_fp16_autocast():
    """λ·Σφ (≈1e-9 here) is below fp16's range: it is formed in fp32."""
    model, method = _model(penalty=2e-10)
    with torch.autocast("cpu", dtype=torch.float16):
        term, stats = method.loss_terms(model)
    phi_sum = sum(float(p.detach().sum()) for p in _phi(model))
    assert term.dtype == torch.float32
    assert float(term) == pytest.approx(2e-10 * phi_sum, rel=1e-5)
    term.backward()
    for p in _phi(model):
        torch.testing.assert_close(p.grad, torch.full_like(p, 2e-10), rtol=1e-6, atol=0)
