"""Tests of MSRSTransformerDecoder (``decoder: msrs_transformer``).

espnet2's TransformerDecoder with dense / LR-SMS low-rank linears (eq. 2
counted over the decoder's own blocks) and LayerScale, also with MSRS masks
applied to its blocks by the one selection of --msrs_conf.
"""

import io

import pytest
import torch
from espnet2.asr.decoder.transformer_decoder import TransformerDecoder

from espnet_msrs.asr.decoder.transformer_decoder import MSRSTransformerDecoder
from espnet_msrs.lowrank.lowrank_linear import LowRankLinear
from espnet_msrs.sparsity.masked_layers import MaskedLinear
from espnet_msrs.sparsity.mask_state import MaskState
from espnet_msrs.sparsity.selection import apply_masks

VOCAB, D = 11, 16
ESPNET_CONF = dict(
    attention_heads=2,
    linear_units=32,
    num_blocks=2,
    dropout_rate=0.0,
    positional_dropout_rate=0.0,
    self_attention_dropout_rate=0.0,
    src_attention_dropout_rate=0.0,
)
# "masked": dense linears of the blocks masked by --msrs_conf's selection
LINEAR_TYPES = ["dense", "lowrank", "masked"]


def make_decoder(kind: str = "dense", seed: int = 0, **kwargs) -> MSRSTransformerDecoder:
    torch.manual_seed(seed)
    conf = dict(ESPNET_CONF)
    conf.update(kwargs)
    linear = "dense" if kind == "masked" else kind
    decoder = MSRSTransformerDecoder(
        VOCAB,
        D,
        mhsa_linear=linear,
        ffn_linear=linear,
        mhsa_alpha=[0.25, 0.5],
        ffn_alpha=[0.5, 1.0],
        **conf,
    )
    if kind == "masked":
        apply_masks(decoder, include=[r"^decoders\."])
    return decoder


def batch(seed: int = 1):
    torch.manual_seed(seed)
    memory = torch.randn(2, 9, D)
    memory_lens = torch.tensor([9, 5])
    ys = torch.randint(1, VOCAB - 1, (2, 6))
    ys_lens = torch.tensor([6, 4])
    ys[1, 4:] = -1
    ys_in = ys.masked_fill(ys == -1, VOCAB - 1)  # ESPnet pads ys_in with eos
    return memory, memory_lens, ys_in, ys_lens


def run(decoder, seed: int = 1):
    memory, memory_lens, ys_in, ys_lens = batch(seed)
    return decoder(memory, memory_lens, ys_in, ys_lens)


def test_dense_equals_espnet_decoder():
    ours = make_decoder("dense").eval()
    torch.manual_seed(0)
    ref = TransformerDecoder(VOCAB, D, **ESPNET_CONF).eval()
    ref_state = ref.state_dict()
    assert list(ours.state_dict()) == list(ref_state)
    for name, value in ours.state_dict().items():
        assert torch.equal(value, ref_state[name]), name
    torch.manual_seed(7)
    ref = TransformerDecoder(VOCAB, D, **ESPNET_CONF).eval()
    ref.load_state_dict(ours.state_dict())
    out, olens = run(ours)
    ref_out, ref_olens = run(ref)
    assert torch.equal(olens, ref_olens)
    torch.testing.assert_close(out, ref_out, rtol=0, atol=0)
    # the incremental path used by ESPnet's beam search
    memory = batch()[0][:1]
    ys = torch.tensor([[VOCAB - 1, 3, 4]])
    score, _ = ours.score(ys[0], None, memory[0])
    ref_score, _ = ref.score(ys[0], None, memory[0])
    torch.testing.assert_close(score, ref_score, rtol=0, atol=0)


@pytest.mark.parametrize("kind", LINEAR_TYPES)
def test_output_shape_lengths_and_types(kind):
    decoder = make_decoder(kind).eval()
    out, olens = run(decoder)
    assert out.shape == (2, 6, VOCAB)
    # espnet2 returns tgt_mask.sum(1), (B, L): non-zero exactly at the valid
    # tokens of each hypothesis.
    assert olens.shape == (2, 6)
    assert torch.equal((olens > 0).sum(1), torch.tensor([6, 4]))
    assert torch.isfinite(out).all()
    expected = {"dense": torch.nn.Linear, "lowrank": LowRankLinear,
                "masked": MaskedLinear}[kind]
    block = decoder.decoders[1]
    for attn in (block.self_attn, block.src_attn):
        for name in ("linear_q", "linear_k", "linear_v", "linear_out"):
            assert type(getattr(attn, name)) is expected
    assert type(block.feed_forward.w_1) is expected
    # output layer and embedding are never factorised (nor masked here: the
    # selection took the blocks only)
    assert type(decoder.output_layer) is torch.nn.Linear
    plan = decoder.linear_plan
    assert len(plan) == 2 * (8 + 2)  # 2 blocks x (2 x 4 MHSA + 2 FFN linears)
    if kind == "lowrank":
        # eq. 2 over the decoder's B = 2 blocks: alpha_1 = 0.25 + 0.25 / 2
        assert plan["0.src_attn.linear_v"]["rank"] == 4
        assert plan["1.self_attn.linear_q"]["rank"] == 6
        assert plan["0.feed_forward.w_1"]["rank"] == 8
        assert plan["1.feed_forward.w_2"]["rank"] == 12


def test_padding_does_not_change_valid_outputs():
    decoder = make_decoder("lowrank").eval()
    memory, memory_lens, ys_in, ys_lens = batch()
    out, _ = decoder(memory, memory_lens, ys_in, ys_lens)
    alone, _ = decoder(memory[1:, :5], memory_lens[1:], ys_in[1:, :4], ys_lens[1:])
    torch.testing.assert_close(out[1:, :4], alone, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", LINEAR_TYPES)
def test_gradients_reach_every_trainable_parameter(kind):
    decoder = make_decoder(kind, layer_scale=True, layer_scale_init=0.5).train()
    out, _ = run(decoder)
    (out * torch.randn_like(out)).sum().backward()
    names = [n for n, _ in decoder.named_parameters()]
    assert sum(n.endswith("layer_scale") for n in names) == 6  # 2 x (self, src, ffn)
    for name, param in decoder.named_parameters():
        assert param.grad is not None, name
        assert torch.count_nonzero(param.grad) > 0, name


@pytest.mark.parametrize("kind", LINEAR_TYPES)
def test_masked_out_weights_stay_exactly_zero(kind):
    decoder = make_decoder(kind).train()
    gen = torch.Generator().manual_seed(0)
    masks = {
        name: torch.rand(p.shape, generator=gen) > 0.4
        for name, p in decoder.named_parameters()
        if name.startswith("decoders.") and name.endswith("weight") and p.dim() == 2
    }
    hooks = MaskState(dict(decoder.named_parameters()), masks)
    opt = torch.optim.AdamW(decoder.parameters(), lr=1e-2, weight_decay=0.1)
    hooks.attach_optimizer(opt)
    params = dict(decoder.named_parameters())
    for _ in range(3):
        opt.zero_grad()
        out, _ = run(decoder)
        out.square().mean().backward()
        opt.step()
    for name, mask in masks.items():
        assert torch.all(params[name].detach()[~mask] == 0.0), name
        assert torch.count_nonzero(params[name].detach()[mask]) == int(mask.sum()), name


@pytest.mark.parametrize("kind", LINEAR_TYPES)
def test_state_dict_round_trip(kind):
    source = make_decoder(kind, seed=0, layer_scale=True).eval()
    target = make_decoder(kind, seed=1, layer_scale=True).eval()
    buffer = io.BytesIO()
    torch.save(source.state_dict(), buffer)
    buffer.seek(0)
    target.load_state_dict(torch.load(buffer))
    torch.testing.assert_close(run(target)[0], run(source)[0], rtol=0, atol=0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(mhsa_linear="svd"), r"decoder_conf.*mhsa_linear='svd'.*allowed.*dense.*lowrank"),
        (dict(ffn_linear="lowrank", ffn_alpha=[0.2, 1.2]), r"decoder_conf\.ffn_alpha.*outside \(0, 1\]"),
        (dict(mhsa_linear="lowrank", mhsa_alpha=-0.5), r"decoder_conf\.mhsa_alpha.*outside \(0, 1\]"),
        (dict(mhsa_linear="lowrank", mhsa_alpha=0.05), r"decoder_conf\.mhsa_alpha.*rank.*= 0.*alpha >= 0\.0625"),
        (dict(mhsa_linear="lowrank", lowrank_init="he"), r"decoder_conf\.lowrank_init='he' is not allowed"),
    ],
)
def test_bad_config_raises_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MSRSTransformerDecoder(VOCAB, D, **kwargs, **ESPNET_CONF)


def test_lowrank_init_kaiming_reaches_the_decoder():
    decoder = make_decoder("lowrank", lowrank_init="kaiming")
    layers = [m for m in decoder.modules() if isinstance(m, LowRankLinear)]
    assert layers and {layer.init for layer in layers} == {"kaiming"}
    assert {layer.init for layer in make_decoder("lowrank").modules()
            if isinstance(layer, LowRankLinear)} == {"svd"}
