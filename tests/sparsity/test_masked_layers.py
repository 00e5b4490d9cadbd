"""Tests of the MSRS masked layers (paper eqs. 3-8)."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from espnet_msrs.sparsity.masked_layers import (
    MaskedConv1d,
    MaskedConv2d,
    MaskedConv3d,
    MaskedLinear,
    _largest_subnormal,
    initial_mask_logits,
    masked_weight,
)

TAU_PAIRS = [(1.0, 1.0), (4.0, 4.0), (10.0, 1.0), (1e5, 1.0), (2.0, 0.5)]


def _loss(w: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    # Non-linear in w, so dL/dw depends on w.
    return (w * r).sum() + (w**2).sum() + torch.tanh(w).pow(3).sum()


@pytest.mark.parametrize("tau_f,tau_b", TAU_PAIRS)
def test_gradients_match_two_temperature_formulas(tau_f, tau_b):
    torch.manual_seed(0)
    theta = torch.randn(5, 7, dtype=torch.float64, requires_grad=True)
    phi = (0.3 * torch.randn(5, 7, dtype=torch.float64)).requires_grad_()
    r = torch.randn(5, 7, dtype=torch.float64)

    w = masked_weight(theta, phi, tau_f, tau_b)
    torch.testing.assert_close(w, theta * torch.sigmoid(tau_f * phi))
    g_theta, g_phi = torch.autograd.grad(_loss(w, r), (theta, phi))

    # Independent autograd computation: a surrogate whose value is the
    # τ_f mask and whose derivative is the τ_b sigmoid's.
    t2 = theta.detach().clone().requires_grad_()
    p2 = phi.detach().clone().requires_grad_()
    s_b = torch.sigmoid(tau_b * p2)
    mask = s_b + (torch.sigmoid(tau_f * p2) - s_b).detach()
    ref_theta, ref_phi = torch.autograd.grad(_loss(t2 * mask, r), (t2, p2))
    torch.testing.assert_close(g_theta, ref_theta)
    torch.testing.assert_close(g_phi, ref_phi)

    # And the closed forms of the brief.
    w_ref = (theta * torch.sigmoid(tau_f * phi)).detach().requires_grad_()
    (g_w,) = torch.autograd.grad(_loss(w_ref, r), (w_ref,))
    sb = torch.sigmoid(tau_b * phi.detach())
    torch.testing.assert_close(g_theta, g_w * torch.sigmoid(tau_f * phi.detach()))
    torch.testing.assert_close(g_phi, g_w * theta.detach() * tau_b * sb * (1 - sb))
    assert g_phi.abs().max() > 0


@pytest.mark.parametrize("tau", [1.0, 3.0])
def test_equal_temperatures_equal_plain_autograd(tau):
    torch.manual_seed(1)
    theta = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    phi = (0.5 * torch.randn(4, 3, dtype=torch.float64)).requires_grad_()
    r = torch.randn(4, 3, dtype=torch.float64)
    g = torch.autograd.grad(_loss(masked_weight(theta, phi, tau, tau), r), (theta, phi))
    ref = torch.autograd.grad(_loss(theta * torch.sigmoid(tau * phi), r), (theta, phi))
    torch.testing.assert_close(g[0], ref[0])
    torch.testing.assert_close(g[1], ref[1])
    assert torch.autograd.gradcheck(
        lambda t, p: masked_weight(t, p, tau, tau), (theta, phi)
    )


def test_function_saves_only_theta_and_phi():
    theta = torch.randn(6, 4, requires_grad=True)
    phi = torch.randn(6, 4, requires_grad=True)
    packed = []

    def pack(t):
        packed.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        masked_weight(theta, phi)
    assert len(packed) == 2
    assert {t.data_ptr() for t in packed} == {theta.data_ptr(), phi.data_ptr()}


def test_initial_mask_logits_eq3():
    theta = torch.tensor([0.0, 1e-3, -0.5, 2.0, -3e-2])
    mu, rho, vs = 1e-3, 5e-4, 1e-8
    expected = torch.tensor(
        [(math.log(abs(t) + vs) / 2 + 1) * rho + mu for t in theta.tolist()]
    )
    torch.testing.assert_close(initial_mask_logits(theta, mu, rho, vs), expected)
    # Other hyper-parameters, via the layer.
    layer = MaskedLinear(5, 1, mu=0.2, rho=0.1, varsigma=1e-3)
    with torch.no_grad():
        layer.weight.copy_(theta.view(1, 5))
    layer.reset_mask_logits()
    expected = torch.tensor(
        [(math.log(abs(t) + 1e-3) / 2 + 1) * 0.1 + 0.2 for t in theta.tolist()]
    )
    torch.testing.assert_close(layer.mask_logits.view(-1), expected)
    assert not layer.mask_logits.grad_fn
    # With the defaults, φ0 ≥ 0 exactly when |θ0| + ς ≥ e^-6.
    edge = math.exp(-6.0)
    phi = initial_mask_logits(torch.tensor([0.99 * edge, 1.01 * edge]).double())
    assert phi[0] < 0 < phi[1]


def test_binary_mask_is_phi_nonnegative():
    layer = MaskedLinear(5, 1)
    with torch.no_grad():
        layer.mask_logits.copy_(torch.tensor([[-1.0, -1e-12, 0.0, 1e-12, 1.0]]))
    mask = layer.binary_mask()
    assert mask.dtype == torch.bool
    assert mask.tolist() == [[False, False, True, True, True]]
    torch.testing.assert_close(
        layer.folded_weight(), layer.weight.detach() * mask.float()
    )


def _layer_and_input(kind):
    if kind == "linear":
        return MaskedLinear(6, 4), torch.randn(2, 3, 6)
    if kind == "conv1d":
        layer = MaskedConv1d(3, 4, 3, padding="same", padding_mode="circular")
        return layer, torch.randn(2, 3, 9)
    if kind == "conv2d":
        return MaskedConv2d(4, 6, (3, 2), stride=2, groups=2), torch.randn(2, 4, 7, 6)
    return MaskedConv3d(2, 3, 3, padding=1, bias=False), torch.randn(1, 2, 4, 5, 5)


def _base_forward(layer, x, weight):
    if isinstance(layer, nn.Linear):
        return F.linear(x, weight, layer.bias)
    return layer._conv_forward(x, weight, layer.bias)


@pytest.mark.parametrize("kind", ["linear", "conv1d", "conv2d", "conv3d"])
def test_forward_equals_base_layer_with_effective_weight(kind):
    torch.manual_seed(2)
    layer, x = _layer_and_input(kind)
    with torch.no_grad():
        layer.mask_logits.copy_(0.01 * torch.randn_like(layer.weight))
    # Soft temperature so that the mask is not binary.
    layer.tau_forward = 50.0
    weff = layer.effective_weight()
    assert weff.shape == layer.weight.shape
    assert ((weff - layer.weight).abs() > 1e-4).any()
    y = layer(x)
    dense = layer.dense_class(
        **{k: v for k, v in layer._dense_kwargs().items()}, bias=layer.bias is not None
    )
    with torch.no_grad():
        dense.weight.copy_(weff)
        if layer.bias is not None:
            dense.bias.copy_(layer.bias)
    torch.testing.assert_close(y, dense(x))
    torch.testing.assert_close(y, _base_forward(layer, x, weff))
    y.square().sum().backward()
    assert layer.weight.grad.abs().sum() > 0
    assert layer.mask_logits.grad.abs().sum() > 0


@pytest.mark.parametrize("kind", ["linear", "conv1d", "conv2d", "conv3d"])
def test_from_dense_with_positive_logits_reproduces_dense(kind):
    torch.manual_seed(3)
    masked_proto, x = _layer_and_input(kind)
    dense = masked_proto.to_dense()
    assert type(dense) is masked_proto.dense_class
    masked = type(masked_proto).from_dense(dense)
    torch.testing.assert_close(
        masked.mask_logits, initial_mask_logits(dense.weight), rtol=0, atol=0
    )
    with torch.no_grad():
        masked.mask_logits.fill_(1.0)
    assert torch.equal(masked(x), dense(x))
    # Copies, not shared storage.
    assert masked.weight.data_ptr() != dense.weight.data_ptr()
    assert set(masked.state_dict()) == (
        {"weight", "bias", "mask_logits"}
        if dense.bias is not None
        else {"weight", "mask_logits"}
    )


def test_from_dense_keeps_dtype_requires_grad_and_kwargs():
    dense = nn.Linear(3, 2, dtype=torch.float64)
    dense.bias.requires_grad_(False)
    dense.eval()
    masked = MaskedLinear.from_dense(dense, tau_forward=10.0, mu=0.5)
    assert masked.weight.dtype == masked.mask_logits.dtype == torch.float64
    assert masked.weight.requires_grad and not masked.bias.requires_grad
    assert masked.mask_logits.requires_grad
    assert not masked.training
    assert masked.tau_forward == 10.0 and masked.mu == 0.5
    torch.testing.assert_close(
        masked.mask_logits, initial_mask_logits(dense.weight, mu=0.5)
    )
    with pytest.raises(ValueError, match="exactly Linear"):
        MaskedLinear.from_dense(nn.Conv1d(1, 1, 1))
    with pytest.raises(ValueError, match="tau_f"):
        MaskedLinear.from_dense(dense, tau_f=1.0)


def test_to_dense_folds_binary_mask():
    torch.manual_seed(4)
    layer = MaskedLinear(8, 5)
    with torch.no_grad():
        layer.mask_logits.copy_(torch.randn(5, 8).sign() * 0.5)
    mask = layer.binary_mask()
    dense = layer.to_dense()
    assert type(dense) is nn.Linear
    assert torch.equal(dense.weight, layer.weight.detach() * mask)
    assert (dense.weight[~mask] == 0.0).all()
    assert torch.equal(dense.bias, layer.bias)
    x = torch.randn(3, 8)
    torch.testing.assert_close(dense(x), layer(x))


def test_constructor_options_and_reset_parameters():
    with pytest.raises(ValueError, match="tau_forward"):
        MaskedLinear(2, 2, tau_forward=0.0)
    with pytest.raises(ValueError, match="varsigma"):
        MaskedConv1d(2, 2, 3, varsigma=0.0)
    layer = MaskedConv2d(2, 3, 3, rho=1e-3)
    assert layer.mask_kwargs["rho"] == 1e-3
    with torch.no_grad():
        layer.mask_logits.fill_(-7.0)
    layer.reset_parameters()
    torch.testing.assert_close(
        layer.mask_logits, initial_mask_logits(layer.weight, rho=1e-3)
    )


def test_autocast_bf16_keeps_mask_product_fp32():
    torch.manual_seed(5)
    layer = MaskedLinear(16, 8)
    x = torch.randn(4, 16)
    ref = layer(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert layer.effective_weight().dtype == torch.float32
        y = layer(x)
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), ref, atol=0.05, rtol=0.05)
    y.float().sum().backward()
    assert layer.weight.grad.dtype == torch.float32
    assert layer.mask_logits.grad.dtype == torch.float32
    assert torch.isfinite(layer.mask_logits.grad).all()
    assert layer.mask_logits.grad.abs().sum() > 0


def test_fp16_parameters_give_binary_mask():
    layer = MaskedLinear(4, 2, dtype=torch.float16)
    with torch.no_grad():
        layer.mask_logits.copy_(torch.tensor([[-0.5, 1e-3, -1e-3, 0.7]] * 2))
    w = layer.effective_weight()
    assert w.dtype == torch.float16 and torch.isfinite(w).all()
    expected = layer.weight.detach() * torch.tensor([0.0, 1.0, 0.0, 1.0]).half()
    assert torch.equal(w.detach(), expected)


@pytest.mark.parametrize("init", ["xavier_uniform", "kaiming_normal", "chainer"])
def test_espnet_initialize_recomputes_phi(init):
    from espnet2.torch_utils.initialize import initialize

    torch.manual_seed(6)
    model = nn.Sequential(MaskedLinear(8, 6), nn.ReLU(), MaskedConv2d(2, 3, 3))
    before = [model[0].weight.detach().clone(), model[2].weight.detach().clone()]
    initialize(model, init)
    for layer, old in zip((model[0], model[2]), before):
        assert not torch.equal(layer.weight, old)
        torch.testing.assert_close(
            layer.mask_logits, initial_mask_logits(layer.weight), rtol=0, atol=0
        )


def test_effective_weight_has_no_subnormals_and_the_same_products():
    """Far-negative φ gives subnormal θ·σ(τ_f φ) (slow x86 matmuls): they are
    flushed to 0, which changes no output of the layer."""
    torch.manual_seed(0)
    layer = MaskedLinear(64, 32)
    with torch.no_grad():
        layer.mask_logits.copy_(torch.linspace(-9.3e-4, 3e-4, 64 * 32).view(32, 64))
    tiny = torch.finfo(torch.float32).tiny
    reference = layer.weight.detach() * torch.sigmoid(
        layer.mask_logits.detach().double() * layer.tau_forward).float()
    assert int(((reference != 0) & (reference.abs() < tiny)).sum()) > 0
    w = layer.effective_weight().detach()
    assert int(((w != 0) & (w.abs() < tiny)).sum()) == 0
    x = torch.randn(16, 64)
    kept = torch.where(w == 0, reference, w)  # the tail's subnormals kept
    expected = torch.nn.functional.linear(x, kept, layer.bias.detach())
    assert torch.equal(layer(x).detach(), expected)



def _subnormals_to_zero(x):
    """The flush by its definition: every |x| below the smallest normal -> +0.0."""
    return x.masked_fill(x.abs() < torch.finfo(x.dtype).tiny, 0.0)


def _same_bits(a, b):
    ints = {2: torch.int16, 4: torch.int32, 8: torch.int64}[a.element_size()]
    return bool(((a.view(ints) == b.view(ints)) | (a.isnan() & b.isnan())).all())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32,
                                   torch.float64])
def test_the_flush_zeroes_exactly_the_subnormals(dtype):
    """The in-place flush (hardshrink at the largest subnormal) against its
    definition: every 16-bit pattern; for 32/64 bits both sides of the
    normal/subnormal boundary, signed zeros, infinities and NaN."""
    if dtype.itemsize == 2:
        x = torch.arange(-(2 ** 15), 2 ** 15, dtype=torch.int32).to(torch.int16).view(dtype)
    else:
        ints = torch.int32 if dtype == torch.float32 else torch.int64
        tiny_bits = torch.tensor(torch.finfo(dtype).tiny, dtype=dtype).view(ints)
        steps = torch.arange(0, 3000, dtype=ints)
        around = torch.cat([tiny_bits - 1 - steps, tiny_bits + steps, steps]).view(dtype)
        special = torch.tensor([0.0, -0.0, float("inf"), -float("inf"), float("nan"), 1.0],
                               dtype=dtype)
        x = torch.cat([around, -around, special, torch.randn(10000, dtype=dtype) * 1e-30])
    expected = _subnormals_to_zero(x)
    assert int((expected == 0).sum()) > int((x == 0).sum())  # something to flush
    flushed = x.clone()
    torch.ops.aten.hardshrink.out(flushed, _largest_subnormal(dtype), out=flushed)
    assert _same_bits(flushed, expected)


def test_theta_gradient_has_no_subnormals_and_is_unchanged_otherwise():
    """∂L/∂θ = ∂L/∂w·σ(τ_f φ) is flushed like w: the bits of the unflushed
    fused pass with its subnormals set to 0, and none left."""
    torch.manual_seed(0)
    layer = MaskedLinear(64, 32)
    with torch.no_grad():
        layer.mask_logits.copy_(torch.linspace(-9.3e-4, 3e-4, 64 * 32).view(32, 64))
    x = torch.randn(16, 64)
    layer(x).square().sum().backward()
    w = layer.effective_weight().detach().requires_grad_()
    F.linear(x, w, layer.bias.detach()).square().sum().backward()
    unflushed = torch.ops.aten.softplus_backward(
        w.grad, layer.mask_logits.detach(), layer.tau_forward, 20.0)
    tiny = torch.finfo(torch.float32).tiny
    assert int(((unflushed != 0) & (unflushed.abs() < tiny)).sum()) > 0
    grad = layer.weight.grad
    assert int(((grad != 0) & (grad.abs() < tiny)).sum()) == 0
    assert _same_bits(grad, _subnormals_to_zero(unflushed))
