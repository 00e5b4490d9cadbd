"""Tests of the MSRS mask-search controller (MSRS eqs. 5–8, Algorithm 1)."""

import pytest
import torch
from torch import nn

from espnet_msrs.sparsity.controller import (
    MaskSearchController,
    find_controller,
    stat_like,
)
from espnet_msrs.sparsity.masked_layers import MaskedLinear
from espnet_msrs.sparsity.policy import apply_masks, masked_modules


class ToyASR(nn.Module):
    """Returns ``(loss, stats, weight)`` like ESPnet's ``ESPnetASRModel``."""

    def __init__(self, gather: bool = False):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 4))
        self.gather = gather

    def forward(self, x, scale: float = 1.0):
        loss = self.encoder(x).square().mean() * scale  # fp16 under autocast
        weight = torch.tensor(x.shape[0])
        stats = {"loss": loss.detach(), "loss_att": loss.detach()}
        if self.gather:  # espnet2's force_gatherable: 0-dim -> (1,)
            loss, weight = loss.reshape(1), weight.reshape(1)
            stats = {k: v.reshape(1) for k, v in stats.items()}
        return loss, stats, weight


def _model(penalty=1e-3, seed=0, **kwargs):
    torch.manual_seed(seed)
    model = ToyASR(**kwargs)
    apply_masks(model)
    controller = MaskSearchController(mask_penalty=penalty).attach(model)
    return model, controller


def _phi(model):
    return [m.mask_logits for m in masked_modules(model).values()]


def _set_sparsity(model, fraction):
    """Make exactly the first ``fraction`` of all mask entries negative."""
    phis = _phi(model)
    flat = torch.cat([p.detach().flatten() for p in phis])
    n = int(round(fraction * flat.numel()))
    flat = torch.full_like(flat, 0.5)
    flat[:n] = -0.5
    with torch.no_grad():
        i = 0
        for p in phis:
            p.copy_(flat[i:i + p.numel()].view_as(p))
            i += p.numel()


def test_penalty_added_to_loss_and_its_gradient_is_lambda():
    x = torch.randn(3, 8)
    model, controller = _model(penalty=1e-3)
    loss, stats, weight = model(x)
    phi_sum = sum(p.sum() for p in _phi(model))
    data_loss = stats["loss_att"]
    assert torch.allclose(loss, data_loss + 1e-3 * phi_sum)
    assert torch.allclose(stats["mask_penalty"], 1e-3 * phi_sum)
    assert torch.equal(stats["loss"], loss.detach())
    loss.backward()
    with_penalty = [p.grad.clone() for p in _phi(model)]
    model2, c2 = _model(penalty=0.0)
    model2(x)[0].backward()
    for g, g0 in zip(with_penalty, (p.grad for p in _phi(model2))):
        torch.testing.assert_close(g - g0, torch.full_like(g, 1e-3), rtol=0, atol=1e-9)


def test_zero_penalty_leaves_loss_bit_identical():
    x = torch.randn(3, 8)
    model, _ = _model(penalty=0.0)
    loss, stats, _ = model(x)
    assert torch.equal(loss, stats["loss_att"])
    assert stats["mask_penalty"] == 0


def test_statistics_match_the_logits():
    model, controller = _model()
    _set_sparsity(model, 0.25)
    with torch.no_grad():
        _phi(model)[0][0, 0] = -3.0
        _phi(model)[1][0, 0] = 2.0
    flat = torch.cat([p.detach().flatten() for p in _phi(model)])
    stats = model(torch.randn(2, 8))[1]
    assert stats["sparsity"] == pytest.approx(float((flat < 0).float().mean()))
    assert stats["phi_mean"] == pytest.approx(float(flat.mean()), abs=1e-6)
    assert stats["phi_std"] == pytest.approx(float(flat.std(unbiased=False)), abs=1e-5)
    assert stats["phi_min"] == -3.0 and stats["phi_max"] == 2.0
    expected = float((flat < 0).float().mean())
    assert controller.current_sparsity() == pytest.approx(expected)
    assert controller.num_mask_entries == flat.numel() == 16 * 8 + 4 * 16


def test_stats_take_the_shape_of_gathered_stats():
    model, _ = _model(gather=True)
    loss, stats, weight = model(torch.randn(2, 8))
    assert all(v.shape == (1,) for v in stats.values())
    assert stat_like(torch.tensor(1.0), None).shape == ()


def test_history_and_stop_rule():
    model, c = _model()
    c.epsilon = 0.01
    _set_sparsity(model, 0.0)
    c.start()
    assert c.epochs == [0] and c.history == [0.0] and not c.converged
    _set_sparsity(model, 0.0)
    c.end_epoch(1)  # 0 -> 0: the mask has not started to move: no stop
    assert not c.converged
    _set_sparsity(model, 0.3)
    c.end_epoch(2)
    assert not c.converged
    _set_sparsity(model, 0.305)
    assert c.end_epoch(3) == pytest.approx(0.305, abs=0.005)
    assert c.converged  # |0.305 - 0.3| < 0.01 at epoch 3 >= min_search_epochs
    assert c.epochs == [0, 1, 2, 3] and c.last_epoch == 3
    assert c.sparsity_at(2) == pytest.approx(0.3, abs=0.005)
    assert c.sparsity_at(7) is None
    _set_sparsity(model, 0.5)
    c.end_epoch(3)  # a re-validated epoch overwrites its entry
    assert not c.converged and c.epochs == [0, 1, 2, 3]


def test_min_search_epochs_delays_the_stop():
    model, c = _model()
    c.min_search_epochs = 3
    _set_sparsity(model, 0.2)
    c.start()
    c.end_epoch(1)
    c.end_epoch(2)
    assert not c.converged
    c.end_epoch(3)
    assert c.converged


def test_history_survives_checkpoint_dtype_cast_and_averaging():
    model, c = _model()
    _set_sparsity(model, 0.4)
    c.start()
    c.end_epoch(1)
    state = model.state_dict()
    assert state["msrs_controller.zeros_history"].dtype == torch.int64
    assert state["msrs_controller.zeros_history"].shape == (c.CAPACITY,)
    model2, c2 = _model(seed=1)
    model2.load_state_dict(state)
    assert c2.history == c.history and c2.epochs == [0, 1]
    model2.half()  # --train_dtype float16 does not round the history
    assert c2.zeros_history.dtype == torch.int64 and c2.history == c.history
    # espnet2's average_nbest_models: sum all entries, divide non-integer ones
    avg = {k: state[k] + model.state_dict()[k] for k in state}
    assert avg["msrs_controller.zeros_history"].dtype == torch.int64


def test_bad_options_and_unmasked_model_raise():
    with pytest.raises(ValueError, match="mask_penalty"):
        MaskSearchController(mask_penalty=-1.0)
    with pytest.raises(ValueError, match="epsilon"):
        MaskSearchController(epsilon=0.0)
    with pytest.raises(ValueError, match="min_search_epochs"):
        MaskSearchController(min_search_epochs=0)
    with pytest.raises(ValueError, match="no masked layer"):
        MaskSearchController().attach(ToyASR())
    model, c = _model()
    with pytest.raises(ValueError, match="epoch=1024"):
        c.record(1024)


def test_find_controller_through_wrappers():
    model, c = _model()

    class Wrapper(nn.Module):
        def __init__(self, module):
            super().__init__()
            self.module = module

    assert find_controller(model) is c
    assert find_controller(Wrapper(Wrapper(model))) is c
    assert find_controller(ToyASR()) is None


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


def test_penalty_gradient_and_value_survive_fp16():
    """λ·Σφ (≈1e-9 here) is below fp16's range: it is added in fp32, and its
    gradient λ reaches every φ in fp32."""
    x = torch.randn(3, 8)
    grads = {}
    for lam in (0.0, 2e-10):
        torch.manual_seed(0)
        model = ToyASR()
        apply_masks(model)
        MaskSearchController(mask_penalty=lam).attach(model)
        with torch.autocast("cpu", dtype=torch.float16):
            loss, stats, _ = model(x, scale=1e-4)
        loss.backward()
        grads[lam] = [p.grad.clone() for p in _phi(model)]
        if lam:
            assert stats["loss_att"].dtype == torch.float16
            assert loss.dtype == torch.float32
            phi_sum = sum(float(p.sum()) for p in _phi(model))
            penalty = float(stats["mask_penalty"])
            assert penalty == pytest.approx(lam * phi_sum, rel=1e-5)
            assert float(loss - stats["loss_att"].float()) == pytest.approx(
                lam * phi_sum, rel=1e-2
            )
    for g, g0 in zip(grads[2e-10], grads[0.0]):
        torch.testing.assert_close(g - g0, torch.full_like(g, 2e-10), rtol=1e-3, atol=0)
