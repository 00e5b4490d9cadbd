"""Tests of MSRSConformerEncoder (``encoder: msrs_conformer``).

espnet2's ConformerEncoder with dense / LR-SMS low-rank linears (LR-SMS
eqs. 1-2) and LayerScale, also with MSRS masks (eqs. 3-8) applied by the one
selection of --msrs_conf, on tiny CPU sizes.
"""

import io

import pytest
import torch
from espnet2.asr.encoder.conformer_encoder import ConformerEncoder

from espnet_msrs.asr.encoder.conformer_encoder import MSRSConformerEncoder
from espnet_msrs.lowrank.lowrank_linear import LowRankLinear
from espnet_msrs.sparsity.masked_layers import MaskedLinear
from espnet_msrs.sparsity.folding import folded_state_dict
from espnet_msrs.sparsity.mask_state import MaskState
from espnet_msrs.sparsity.selection import MaskSelection, apply_masks

IDIM, D = 8, 16
ESPNET_CONF = dict(
    output_size=D,
    attention_heads=2,
    linear_units=32,
    num_blocks=2,
    dropout_rate=0.0,
    positional_dropout_rate=0.0,
    attention_dropout_rate=0.0,
    macaron_style=True,
    rel_pos_type="latest",
    pos_enc_layer_type="rel_pos",
    selfattention_layer_type="rel_selfattn",
    use_cnn_module=True,
    cnn_module_kernel=3,
)
# "masked": dense linears masked by the MSRS search's selection (--msrs_conf)
LINEAR_TYPES = ["dense", "lowrank", "masked"]
INPUT_LAYERS = ["linear", "conv2d"]


def make_encoder(
    kind: str = "dense", seed: int = 0, input_layer: str = "linear", **kwargs
) -> MSRSConformerEncoder:
    torch.manual_seed(seed)
    conf = dict(ESPNET_CONF, input_layer=input_layer)
    conf.update(kwargs)
    linear = "dense" if kind == "masked" else kind
    encoder = MSRSConformerEncoder(
        IDIM,
        mhsa_linear=linear,
        ffn_linear=linear,
        mhsa_alpha=[0.25, 0.5],
        ffn_alpha=0.5,
        **conf,
    )
    if kind == "masked":
        apply_masks(encoder)
    return encoder


def batch(lengths=(11, 7), seed: int = 1):
    torch.manual_seed(seed)
    xs = torch.randn(len(lengths), max(lengths), IDIM)
    return xs, torch.tensor(lengths)


def expected_lengths(lengths: torch.Tensor, input_layer: str) -> torch.Tensor:
    """Valid output frames: ESPnet's Conv2dSubsampling keeps mask[:, :-2:2]
    twice, i.e. T -> len(range(0, T - 2, 2)) frames, of which ceil(L / 2)
    are valid (capped at the new T)."""
    if input_layer == "linear":
        return lengths
    frames = int(lengths.max())
    for _ in range(2):  # two (kernel 3, stride 2) convolutions
        frames = len(range(0, frames - 2, 2))
        lengths = torch.clamp((lengths + 1) // 2, max=frames)
    return lengths


@pytest.mark.parametrize("input_layer", INPUT_LAYERS)
def test_dense_equals_espnet_encoder(input_layer):
    ours = make_encoder("dense", input_layer=input_layer).eval()
    # Same seed, same draws: with dense linears nothing is converted.
    torch.manual_seed(0)
    ref = ConformerEncoder(IDIM, input_layer=input_layer, **ESPNET_CONF).eval()
    ref_state = ref.state_dict()
    assert list(ours.state_dict()) == list(ref_state)
    for name, value in ours.state_dict().items():
        assert torch.equal(value, ref_state[name]), name
    # ... and with another init, loading our weights gives our outputs.
    torch.manual_seed(123)
    ref = ConformerEncoder(IDIM, input_layer=input_layer, **ESPNET_CONF).eval()
    ref.load_state_dict(ours.state_dict())
    xs, lens = batch()
    out, olens, _ = ours(xs, lens)
    ref_out, ref_olens, _ = ref(xs, lens)
    assert torch.equal(olens, ref_olens)
    torch.testing.assert_close(out, ref_out, rtol=0, atol=0)


@pytest.mark.parametrize("input_layer", INPUT_LAYERS)
@pytest.mark.parametrize("kind", LINEAR_TYPES)
def test_output_shape_and_lengths(kind, input_layer):
    encoder = make_encoder(kind, input_layer=input_layer).eval()
    xs, lens = batch()
    out, olens, _ = encoder(xs, lens)
    expected = expected_lengths(lens, input_layer)
    assert torch.equal(olens, expected)
    frames = int(lens.max()) if input_layer == "linear" else ((int(lens.max()) - 1) // 2 - 1) // 2
    assert out.shape == (2, frames, D)
    assert encoder.output_size() == D
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("kind", LINEAR_TYPES)
def test_linear_types_and_ranks(kind):
    encoder = make_encoder(kind)
    expected_type = {"dense": torch.nn.Linear, "lowrank": LowRankLinear,
                     "masked": MaskedLinear}[kind]
    attn = encoder.encoders[1].self_attn
    for name in ("linear_q", "linear_k", "linear_v", "linear_out", "linear_pos"):
        assert type(getattr(attn, name)) is expected_type, name
    for ffn in (encoder.encoders[0].feed_forward, encoder.encoders[0].feed_forward_macaron):
        assert type(ffn.w_1) is expected_type and type(ffn.w_2) is expected_type
    plan = encoder.linear_plan
    assert len(plan) == 2 * (5 + 4)  # 2 blocks x (5 MHSA + 4 FFN linears)
    if kind == "lowrank":
        # eq. 2: alpha_b = 0.25 + b (0.5 - 0.25) / 2; r = int(alpha_b * 16)
        assert plan["0.self_attn.linear_q"]["rank"] == 4
        assert plan["1.self_attn.linear_pos"]["rank"] == 6
        assert plan["1.feed_forward_macaron.w_2"]["rank"] == 8  # uniform 0.5
        assert encoder.encoders[1].self_attn.linear_q.rank == 6
    else:
        assert {e["rank"] for e in plan.values()} == {16}


def test_padding_does_not_change_valid_frames():
    # ESPnet's convolution module reads padded frames (as upstream does), so
    # the check runs without it; attention and FFNs must ignore the padding.
    encoder = make_encoder("lowrank", use_cnn_module=False).eval()
    xs, lens = batch((9, 6))
    out, _, _ = encoder(xs, lens)
    alone, _, _ = encoder(xs[1:, :6], lens[1:])
    torch.testing.assert_close(out[1:, :6], alone, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", LINEAR_TYPES)
def test_gradients_reach_every_trainable_parameter(kind):
    encoder = make_encoder(kind, layer_scale=True, layer_scale_init=0.5).train()
    xs, lens = batch()
    out, olens, _ = encoder(xs, lens)
    (out * torch.randn_like(out)).sum().backward()
    names = [n for n, p in encoder.named_parameters() if p.requires_grad]
    assert any(n.endswith("layer_scale") for n in names)
    if kind == "lowrank":
        assert any("lowrank_u" in n for n in names)
    if kind == "masked":
        assert any(n.endswith("mask_logits") for n in names)
    for name, param in encoder.named_parameters():
        assert param.grad is not None, name
        assert torch.count_nonzero(param.grad) > 0, name


@pytest.mark.parametrize("kind", LINEAR_TYPES)
def test_masked_out_weights_stay_exactly_zero(kind):
    """Sparse retraining (MSRS Algorithm 1): AdamW with weight decay never
    moves a pruned weight of any linear of the encoder away from 0.0."""
    encoder = make_encoder(kind).train()
    gen = torch.Generator().manual_seed(0)
    masks = {
        name: torch.rand(p.shape, generator=gen) > 0.4
        for name, p in encoder.named_parameters()
        if name.endswith("weight") and p.dim() == 2
    }
    hooks = MaskState(dict(encoder.named_parameters()), masks)
    opt = torch.optim.AdamW(encoder.parameters(), lr=1e-2, weight_decay=0.1)
    hooks.attach_optimizer(opt)
    params = dict(encoder.named_parameters())
    before = {n: params[n].detach().clone() for n in masks}
    xs, lens = batch()
    for _ in range(3):
        opt.zero_grad()
        out, _, _ = encoder(xs, lens)
        out.square().mean().backward()
        opt.step()
    for name, mask in masks.items():
        weight = params[name].detach()
        assert torch.all(weight[~mask] == 0.0), name
        assert not torch.equal(weight[mask], before[name][mask]), name


def test_masked_forward_uses_binary_mask():
    """With |φ| far from 0, θ ⊙ σ(τ_f φ) is θ ⊙ 1[φ ≥ 0] (eqs. 4, 8): the
    masked encoder equals espnet2's encoder loaded with the folded weights."""
    encoder = make_encoder("masked").eval()
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, param in encoder.named_parameters():
            if name.endswith("mask_logits"):
                sign = torch.where(torch.rand(param.shape, generator=gen) < 0.3, -1, 1)
                param.copy_(sign * 1e-2)
    ref = ConformerEncoder(IDIM, input_layer="linear", **ESPNET_CONF).eval()
    folded = folded_state_dict(encoder)
    ref.load_state_dict(folded)
    zeros = sum(int((v == 0).sum()) for k, v in folded.items() if "feed_forward" in k)
    assert zeros > 0
    xs, lens = batch()
    out, _, _ = encoder(xs, lens)
    ref_out, _, _ = ref(xs, lens)
    torch.testing.assert_close(out, ref_out, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", LINEAR_TYPES)
def test_state_dict_round_trip(kind):
    source = make_encoder(kind, seed=0, layer_scale=True).eval()
    target = make_encoder(kind, seed=1, layer_scale=True).eval()
    buffer = io.BytesIO()
    torch.save(source.state_dict(), buffer)
    buffer.seek(0)
    target.load_state_dict(torch.load(buffer))
    xs, lens = batch()
    torch.testing.assert_close(target(xs, lens)[0], source(xs, lens)[0], rtol=0, atol=0)


def test_layer_scale_one_equals_espnet_and_small_init_shrinks_branches():
    ours = make_encoder("dense", layer_scale=True, layer_scale_init=1.0).eval()
    ref = ConformerEncoder(IDIM, input_layer="linear", **ESPNET_CONF).eval()
    state = {k: v for k, v in ours.state_dict().items() if "layer_scale" not in k}
    ref.load_state_dict(state)
    xs, lens = batch()
    torch.testing.assert_close(ours(xs, lens)[0], ref(xs, lens)[0], rtol=1e-6, atol=1e-6)
    # 2 blocks x (macaron FFN, self-attention, convolution, FFN)
    assert len(ours.layer_scale_params) == 8
    small = make_encoder("dense", layer_scale=True, layer_scale_init=1e-4).eval()
    assert torch.all(small.encoders[0].self_attn.layer_scale == 1e-4)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(mhsa_linear="sparse"), r"encoder_conf.*mhsa_linear='sparse'.*allowed.*dense.*lowrank"),
        (dict(ffn_linear="masked"), r"ffn_linear='masked'.*masks are chosen by --msrs_conf"),
        (dict(ffn_linear="LowRank"), r"ffn_linear='LowRank'.*allowed"),
        (dict(ffn_linear="lowrank", ffn_alpha=1.5), r"encoder_conf\.ffn_alpha.*outside \(0, 1\]"),
        (dict(mhsa_linear="lowrank", mhsa_alpha=0.0), r"encoder_conf\.mhsa_alpha.*outside \(0, 1\]"),
        (dict(mhsa_linear="lowrank", mhsa_alpha=[0.1, 0.2, 0.3]), r"mhsa_alpha.*\[alpha_i, alpha_f\]"),
        (dict(mhsa_linear="lowrank", mhsa_alpha=0.01), r"encoder_conf\.mhsa_alpha.*rank.*= 0.*alpha >= 0\.0625"),
        (dict(ffn_linear="lowrank", positionwise_layer_type="conv1d"), r"encoder_conf.*ffn_linear='lowrank' matched no layer"),
        (dict(ffn_linear="lowrank", lowrank_init="xavier"), r"encoder_conf\.lowrank_init='xavier' is not allowed.*svd.*kaiming"),
    ],
)
def test_bad_config_raises_value_error(kwargs, match):
    conf = dict(ESPNET_CONF, input_layer="linear")
    conf.update({k: v for k, v in kwargs.items() if k in ("positionwise_layer_type",)})
    own = {k: v for k, v in kwargs.items() if k not in conf}
    with pytest.raises(ValueError, match=match):
        MSRSConformerEncoder(IDIM, **own, **conf)


def test_maskable_pattern_that_matches_nothing_raises():
    """--msrs_conf include/exclude patterns must each match a maskable weight."""
    encoder = make_encoder("dense")
    for key in ("include", "exclude"):
        with pytest.raises(
            ValueError,
            match=rf"msrs_conf.{key} pattern 'no_such_layer'.*maskable weights are",
        ):
            MaskSelection(**{key: ["no_such_layer"]}).select(encoder)


# ----------------------------------------------- LR-SMS parameter counts
#: The same Conformer flavour as ESPNET_CONF at the papers' size (dropout
#: rates do not change parameter counts).
PAPER_ENCODER = dict(ESPNET_CONF, output_size=768, attention_heads=12, linear_units=3072,
                     num_blocks=12, input_layer="linear", cnn_module_kernel=31)
PAPER_DECODER = dict(attention_heads=12, linear_units=3072, num_blocks=6)
#: LR-SMS Tables I and II: (MHSA alpha, FFN alpha, total M); 243 M full rank.
LR_SMS_ROWS = [
    (0.25, 0.25, 113), (0.23, 0.23, 107), (0.12, 0.12, 74.2),
    (0.25, None, 211), (0.12, None, 194), (0.06, None, 186),
    (None, 0.50, 189), (None, 0.25, 145), (None, 0.06, 112),
    ([0.1, 0.2], None, 197), ([0.2, 0.4], [0.4, 0.6], 161),
    ([0.1, 0.2], [0.2, 0.5], 115), ([0.1, 0.2], [0.2, 0.4], 107),
]


def _paper_size_params(mhsa=None, ffn=None) -> int:
    """Parameters of the 12x768 Conformer + 6x768 Transformer, built on meta."""
    from espnet_msrs.asr.decoder.transformer_decoder import MSRSTransformerDecoder

    conf = {}
    for group, alpha in (("mhsa", mhsa), ("ffn", ffn)):
        if alpha is not None:
            conf.update({f"{group}_linear": "lowrank", f"{group}_alpha": alpha})
    with torch.device("meta"):
        encoder = MSRSConformerEncoder(512, **conf, **PAPER_ENCODER)
        decoder = MSRSTransformerDecoder(5000, 768, **conf, **PAPER_DECODER)
    return sum(p.numel() for m in (encoder, decoder) for p in m.parameters())


@pytest.fixture(scope="module")
def full_rank_params():
    return _paper_size_params()


@pytest.mark.parametrize("mhsa, ffn, paper", LR_SMS_ROWS, ids=[str(r[:2]) for r in LR_SMS_ROWS])
def test_lr_sms_removed_parameters_match_the_paper(mhsa, ffn, paper, full_rank_params):
    """Factorisation removes what 243 M -> paper total implies: within 1 %,
    or within the papers' rounding (two totals to 3 digits, +-0.5 M each) for
    the rows that remove little (e.g. MHSA alpha=0.12: 49 M +- 1 M)."""
    removed = full_rank_params - _paper_size_params(mhsa, ffn)
    implied = (243 - paper) * 1e6
    assert abs(removed - implied) <= max(0.01 * implied, 1.0e6), (removed, implied)


def test_lr_sms_headline_removes_136m_within_one_percent(full_rank_params):
    removed = full_rank_params - _paper_size_params([0.1, 0.2], [0.2, 0.4])
    assert abs(removed - 136e6) <= 0.01 * 136e6
    # the layers the paper factorises: 12 x (5 MHSA + 4 FFN) + 6 x (8 MHSA + 2 FFN)
    with torch.device("meta"):
        encoder = MSRSConformerEncoder(512, mhsa_linear="lowrank", ffn_linear="lowrank",
                                       mhsa_alpha=[0.1, 0.2], ffn_alpha=[0.2, 0.4],
                                       **PAPER_ENCODER)
    assert sum(isinstance(m, LowRankLinear) for m in encoder.modules()) == 12 * 9


@pytest.mark.parametrize("lowrank_init", ["svd", "kaiming"])
def test_lowrank_init_reaches_every_lowrank_layer(lowrank_init):
    """``encoder_conf.lowrank_init``: svd factors are a truncated SVD (UᵀU
    diagonal); kaiming factors are drawn directly (LR-SMS Fig. 4)."""
    encoder = make_encoder("lowrank", lowrank_init=lowrank_init)
    layers = [m for m in encoder.modules() if isinstance(m, LowRankLinear)]
    assert len(layers) == 2 * 9  # 2 blocks x (5 MHSA + 4 FFN)
    for layer in layers:
        assert layer.init == lowrank_init
        u = layer.lowrank_u.weight.detach().double()
        gram = u.T @ u
        off_diagonal = (gram - torch.diag(torch.diag(gram))).abs().max()
        if lowrank_init == "svd":
            assert off_diagonal < 1e-6 * gram.diag().max()
        else:
            assert off_diagonal > 1e-3 * gram.diag().max()
