"""Tests of espnet_msrs.lowrank.lowrank_linear (LR-SMS eq. 1)."""

import copy
from pathlib import Path

import pytest
import torch

from espnet_msrs.lowrank.lowrank_linear import LowRankLinear


def _svd64(weight: torch.Tensor):
    return torch.linalg.svd(weight.detach().double(), full_matrices=False)


def _factors(layer: LowRankLinear):
    """U (m, r) and Vᵀ (r, n) in float64."""
    u, vt = layer.lowrank_u.weight, layer.lowrank_v.weight
    return u.detach().double(), vt.detach().double()


@pytest.mark.parametrize("shape,rank", [((8, 12), 3), ((12, 8), 5), ((10, 10), 1)])
def test_from_linear_is_best_rank_r_approximation(shape, rank):
    m, n = shape
    torch.manual_seed(0)
    dense = torch.nn.Linear(n, m)
    layer = LowRankLinear.from_linear(dense, rank)
    assert (layer.out_features, layer.in_features, layer.rank) == (m, n, rank)
    assert layer.lowrank_u.weight.shape == (m, rank)
    assert layer.lowrank_v.weight.shape == (rank, n)

    u_hat, s, vh = _svd64(dense.weight)
    approx = layer.dense_weight().detach().double()
    # Eckart–Young: ||W − U·Vᵀ||_F² = sum of the squared discarded singular values.
    err2 = (dense.weight.double() - approx).pow(2).sum()
    torch.testing.assert_close(err2, s[rank:].pow(2).sum(), rtol=1e-5, atol=1e-10)
    # U·Vᵀ is the truncated SVD Û_{:r} Σ_r V̂ᵀ_{:r}.
    truncated = u_hat[:, :rank] @ torch.diag(s[:rank]) @ vh[:rank]
    torch.testing.assert_close(approx, truncated, rtol=0, atol=1e-6)
    # bias copied exactly; the dense layer is left untouched
    assert torch.equal(layer.lowrank_u.bias, dense.bias)


def test_factors_are_balanced():
    torch.manual_seed(1)
    dense = torch.nn.Linear(9, 7)
    layer = LowRankLinear.from_linear(dense, 4)
    u, vt = _factors(layer)
    s = _svd64(dense.weight)[1][:4]
    # U = Û√Σ, Vᵀ = √ΣV̂ᵀ  =>  UᵀU = VᵀV = Σ_r (diagonal)
    torch.testing.assert_close(u.T @ u, torch.diag(s), rtol=0, atol=1e-6)
    torch.testing.assert_close(vt @ vt.T, torch.diag(s), rtol=0, atol=1e-6)


@pytest.mark.parametrize("input_shape", [(12,), (3, 12), (2, 5, 12), (2, 3, 4, 12)])
def test_full_rank_reproduces_dense_outputs(input_shape):
    torch.manual_seed(2)
    dense = torch.nn.Linear(12, 8)
    layer = LowRankLinear.from_linear(dense, 8)
    x = torch.randn(*input_shape)
    out = layer(x)
    assert out.shape == (*input_shape[:-1], 8)
    torch.testing.assert_close(out, dense(x), rtol=0, atol=1e-5)


def test_constructor_draws_nn_linear_default_init():
    torch.manual_seed(3)
    full = LowRankLinear(12, 8, 8)
    torch.manual_seed(3)
    reference = torch.nn.Linear(12, 8)
    # same seed -> the same dense W as nn.Linear, factorised without loss
    torch.testing.assert_close(full.dense_weight(), reference.weight, rtol=0, atol=1e-6)
    assert torch.equal(full.lowrank_u.bias, reference.bias)

    torch.manual_seed(3)
    low = LowRankLinear(12, 8, 3)
    u_hat, s, vh = _svd64(reference.weight)
    truncated = u_hat[:, :3] @ torch.diag(s[:3]) @ vh[:3]
    torch.testing.assert_close(
        low.dense_weight().detach().double(), truncated, rtol=0, atol=1e-6
    )

    # reset_parameters() re-draws the same way
    torch.manual_seed(4)
    low.reset_parameters()
    torch.manual_seed(4)
    reference = torch.nn.Linear(12, 8)
    u_hat, s, vh = _svd64(reference.weight)
    truncated = u_hat[:, :3] @ torch.diag(s[:3]) @ vh[:3]
    torch.testing.assert_close(
        low.dense_weight().detach().double(), truncated, rtol=0, atol=1e-6
    )
    assert torch.equal(low.lowrank_u.bias, reference.bias)


def test_from_linear_draws_no_random_numbers_and_keeps_dtype():
    dense = torch.nn.Linear(6, 5, bias=False, dtype=torch.float64)
    torch.manual_seed(5)
    state = torch.get_rng_state()
    layer = LowRankLinear.from_linear(dense, 2)
    assert torch.equal(torch.get_rng_state(), state)
    assert layer.lowrank_u.bias is None
    assert layer.lowrank_u.weight.dtype == torch.float64
    assert layer.lowrank_v.weight.device == dense.weight.device


def test_gradients_reach_u_v_and_bias():
    torch.manual_seed(6)
    layer = LowRankLinear(6, 5, 2)
    x = torch.randn(4, 3, 6)
    layer(x).sum().backward()
    u, vt = layer.lowrank_u.weight, layer.lowrank_v.weight
    # z = U(Vᵀx) + b, L = Σz:  dL/db = #rows, dL/dU = 1·(Vᵀx)ᵀ, dL/dVᵀ = Uᵀ1·xᵀ
    rows = x.reshape(-1, 6)
    torch.testing.assert_close(layer.lowrank_u.bias.grad, torch.full((5,), 12.0))
    expected_u = torch.ones(5, 12) @ (rows @ vt.detach().T)
    torch.testing.assert_close(u.grad, expected_u, rtol=1e-5, atol=1e-5)
    expected_vt = (u.detach().T @ torch.ones(5, 12)) @ rows
    torch.testing.assert_close(vt.grad, expected_vt, rtol=1e-5, atol=1e-5)
    assert u.grad.abs().sum() > 0 and vt.grad.abs().sum() > 0


@pytest.mark.parametrize("rank", [0, -1, 6])
def test_bad_rank_raises(rank):
    with pytest.raises(ValueError, match="rank"):
        LowRankLinear(5, 8, rank)
    with pytest.raises(ValueError, match="rank"):
        LowRankLinear.from_linear(torch.nn.Linear(5, 8), rank)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="torch.nn.Linear"):
        LowRankLinear.from_linear(torch.nn.Conv1d(4, 4, 1), 2)
    layer = LowRankLinear(4, 3, 2, bias=False)
    with pytest.raises(ValueError, match="shape"):
        layer.svd_init_(torch.randn(4, 3))
    with pytest.raises(ValueError, match="bias=False"):
        layer.svd_init_(torch.randn(3, 4), torch.zeros(3))


def test_helpers_and_parameter_names():
    layer = LowRankLinear(16, 12, 3)
    assert layer.dense_weight().shape == (12, 16)
    assert torch.linalg.matrix_rank(layer.dense_weight().detach()) == 3
    assert layer.num_parameters_saved() == 12 * 16 - 3 * (12 + 16) == 108
    assert LowRankLinear(4, 4, 4).num_parameters_saved() == 16 - 32
    assert sorted(layer.state_dict()) == [
        "lowrank_u.bias",
        "lowrank_u.weight",
        "lowrank_v.weight",
    ]
    assert "rank=3" in repr(layer)
    clone = copy.deepcopy(layer)
    x = torch.randn(2, 16)
    assert torch.equal(clone(x), layer(x))


@pytest.mark.parametrize("init", ["xavier_uniform", "kaiming_normal", "chainer"])
def test_espnet_initialize_keeps_an_svd_factorisation(init):
    from espnet2.torch_utils.initialize import initialize

    torch.manual_seed(7)
    model = torch.nn.Sequential(
        torch.nn.Linear(10, 16), LowRankLinear(16, 12, 4), torch.nn.Linear(12, 3)
    )
    initialize(model, init)
    layer = model[1]
    u, vt = _factors(layer)
    dense = u @ vt
    assert torch.linalg.matrix_rank(dense) <= 4
    # balanced factors of an SVD: UᵀU = VᵀV = diag(singular values of U·Vᵀ)
    s = torch.linalg.svdvals(dense)[:4]
    torch.testing.assert_close(u.T @ u, torch.diag(s), rtol=0, atol=1e-6)
    torch.testing.assert_close(vt @ vt.T, torch.diag(s), rtol=0, atol=1e-6)
    # scale of nn.Linear's default init: |W_ij| <= 1/√fan_in before truncation,
    # so ||U·Vᵀ||_F <= ||W||_F <= √(m·n/fan_in)
    assert 0 < torch.linalg.norm(dense) <= (12 * 16 / 16) ** 0.5
    # the bias is left as ESPnet set it (zeros), like every dense bias
    assert torch.equal(layer.lowrank_u.bias, torch.zeros(12))
    assert torch.equal(model[0].bias, torch.zeros(16))


# ------------------------------------------- lowrank_init: kaiming (Fig. 4)


def _var(t):
    return t.detach().double().var(unbiased=True).item()


@pytest.mark.parametrize("build", ["constructor", "from_linear", "espnet_hook"])
def test_kaiming_factors_have_he_variance(build):
    """Both factors drawn directly, He-normal by fan-in: Var(Vᵀ) = 2/n,
    Var(U) = 2/r, so Var(U·Vᵀ) = 4/n (not the dense layer's 1/(3n))."""
    n, m, r = 1024, 768, 96
    torch.manual_seed(0)
    if build == "constructor":
        layer = LowRankLinear(n, m, r, init="kaiming")
    elif build == "from_linear":
        dense = torch.nn.Linear(n, m)
        layer = LowRankLinear.from_linear(dense, r, init="kaiming")
        assert torch.equal(layer.lowrank_u.bias, dense.bias)  # the dense bias
    else:
        from espnet2.torch_utils.initialize import initialize

        layer = LowRankLinear(n, m, r, init="kaiming")
        initialize(torch.nn.Sequential(layer), "xavier_uniform")  # hook re-draws
        assert torch.equal(layer.lowrank_u.bias, torch.zeros(m))
    u, vt = layer.lowrank_u.weight, layer.lowrank_v.weight
    # sampling error of a variance estimate: sqrt(2/N) ~ 0.5 % for 7e4..1e5 values
    assert _var(vt) == pytest.approx(2 / n, rel=0.03)
    assert _var(u) == pytest.approx(2 / r, rel=0.03)
    assert abs(vt.mean().item()) < 0.05 * (2 / n) ** 0.5  # zero mean
    assert _var(layer.dense_weight()) == pytest.approx(4 / n, rel=0.05)
    assert layer.init == "kaiming" and "init=kaiming" in repr(layer)
    # the factors are not a truncated SVD of anything: UᵀU is not diagonal
    gram = (u.T @ u).detach()
    assert (gram - torch.diag(torch.diag(gram))).abs().max() > 0.1 * gram.diag().mean()


def test_svd_init_keeps_the_dense_variance():
    """SVD (eq. 1) at full rank reproduces W: Var(U·Vᵀ) = Var(W) = 1/(3n)."""
    n, m = 512, 384
    torch.manual_seed(0)
    layer = LowRankLinear(n, m, min(n, m))
    assert _var(layer.dense_weight()) == pytest.approx(1 / (3 * n), rel=0.03)


def test_bad_lowrank_init_raises():
    with pytest.raises(ValueError, match=r"lowrank_init='xavier' is not allowed"):
        LowRankLinear(8, 8, 2, init="xavier")
    with pytest.raises(ValueError, match=r"lowrank_init='he'"):
        LowRankLinear.from_linear(torch.nn.Linear(8, 8), 2, init="he")


@pytest.mark.parametrize("scheme", ["xavier_uniform", "kaiming_normal", "chainer"])
def test_svd_starts_from_the_espnet_init_scheme(scheme):
    """Under ``espnet_init(scheme)`` ESPnet's hook SVD-factorises a dense W
    drawn by ESPnet's own ``initialize`` with that scheme."""
    from espnet2.torch_utils.initialize import initialize

    from espnet_msrs.lowrank import espnet_init

    layer = LowRankLinear(16, 12, 12)  # full rank: U·Vᵀ = W exactly
    torch.manual_seed(5)
    with espnet_init(scheme):
        layer.espnet_initialization_fn()
    torch.manual_seed(5)
    reference = torch.nn.utils.skip_init(torch.nn.Linear, 16, 12, bias=False)
    initialize(reference, scheme)
    torch.testing.assert_close(layer.dense_weight(), reference.weight, rtol=0, atol=1e-6)


def test_task_build_model_applies_espnet_init_to_the_svd(tmp_path):
    """``init: xavier_uniform`` in a config: the task's build_model makes the
    low-rank layers SVD-factorise a Glorot-drawn W (|W| up to √(6/(m+n)) =
    0.31 for 32×32), not nn.Linear's default (|W| <= 1/√32 = 0.18)."""
    import yaml

    import espnet_msrs  # noqa: F401
    from espnet_msrs.tasks.asr import MSRSASRTask

    repo = Path(__file__).resolve().parents[2]
    config = yaml.safe_load((repo / "conf/tuning/train_asr_tiny.yaml").read_text())
    config["encoder_conf"].update(mhsa_linear="lowrank", mhsa_alpha=1.0)
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(config))
    maxima = {}
    for init in ("xavier_uniform", None):
        argv = ["--config", str(path)] + (["--init", init] if init else [])
        args = MSRSASRTask.get_parser().parse_args(argv)
        args.token_list = ["<blank>", "<unk>", "A", "B", "<sos/eos>"]
        torch.manual_seed(0)
        model = MSRSASRTask.build_model(args)
        layer = model.encoder.encoders[0].self_attn.linear_q
        assert isinstance(layer, LowRankLinear) and layer.rank == 32
        maxima[init] = layer.dense_weight().abs().max().item()
    assert 0.25 < maxima["xavier_uniform"] <= (6 / 64) ** 0.5 + 1e-6
    assert maxima[None] <= 32 ** -0.5 + 1e-6
