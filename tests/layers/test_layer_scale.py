"""Tests of espnet_msrs.layers.layer_scale on ESPnet's own blocks."""

import copy
import io

import pytest
import torch
from espnet.nets.pytorch_backend.conformer.convolution import ConvolutionModule
from espnet.nets.pytorch_backend.conformer.encoder_layer import EncoderLayer
from espnet.nets.pytorch_backend.transformer.attention import (
    MultiHeadedAttention,
    RelPositionMultiHeadedAttention,
)
from espnet.nets.pytorch_backend.transformer.decoder_layer import DecoderLayer
from espnet.nets.pytorch_backend.transformer.embedding import RelPositionalEncoding
from espnet.nets.pytorch_backend.transformer.mask import subsequent_mask
from espnet.nets.pytorch_backend.transformer.positionwise_feed_forward import (
    PositionwiseFeedForward,
)

from espnet_msrs.layers.layer_scale import (
    LAYER_SCALE_BRANCHES,
    add_layer_scale,
    apply_layer_scale,
)

D, HEADS, FF, KERNEL = 8, 2, 16, 3

# last layer of each branch: zeroing it makes the branch output exactly zero
_BRANCH_LAST = {
    "feed_forward_macaron": "feed_forward_macaron.w_2",
    "self_attn": "self_attn.linear_out",
    "src_attn": "src_attn.linear_out",
    "conv_module": "conv_module.pointwise_conv2",
    "feed_forward": "feed_forward.w_2",
}


def make_encoder_layer(seed: int = 0, macaron: bool = True, concat_after=False):
    torch.manual_seed(seed)
    layer = EncoderLayer(
        D,
        RelPositionMultiHeadedAttention(HEADS, D, 0.0),
        PositionwiseFeedForward(D, FF, 0.0),
        PositionwiseFeedForward(D, FF, 0.0) if macaron else None,
        ConvolutionModule(D, KERNEL),
        dropout_rate=0.1,
        concat_after=concat_after,
    )
    return layer.eval()


def make_decoder_layer(seed: int = 0):
    torch.manual_seed(seed)
    layer = DecoderLayer(
        D,
        MultiHeadedAttention(HEADS, D, 0.0),
        MultiHeadedAttention(HEADS, D, 0.0),
        PositionwiseFeedForward(D, FF, 0.0),
        dropout_rate=0.1,
    )
    return layer.eval()


def encoder_inputs(seed: int = 10):
    torch.manual_seed(seed)
    x, pos_emb = RelPositionalEncoding(D, 0.0)(torch.randn(2, 5, D))
    mask = torch.ones(2, 1, 5, dtype=torch.bool)
    mask[1, :, 4:] = False  # second utterance has 4 valid frames
    return x, pos_emb, mask


def decoder_inputs(seed: int = 11):
    torch.manual_seed(seed)
    tgt = torch.randn(2, 4, D)
    tgt_mask = subsequent_mask(4).unsqueeze(0).expand(2, 4, 4)
    memory = torch.randn(2, 6, D)
    memory_mask = torch.ones(2, 1, 6, dtype=torch.bool)
    memory_mask[1, :, 5:] = False
    return tgt, tgt_mask, memory, memory_mask


def run_encoder(layer, inputs):
    x, pos_emb, mask = inputs
    (out, pos_out), mask_out = layer((x, pos_emb), mask)
    assert pos_out is pos_emb and mask_out is mask
    return out


def zero_branch(layer, branch):
    last = layer.get_submodule(_BRANCH_LAST[branch])
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()


@pytest.mark.parametrize("macaron", [True, False])
def test_init_one_is_the_unmodified_encoder_layer(macaron):
    reference = make_encoder_layer(seed=0, macaron=macaron)
    scaled = make_encoder_layer(seed=1, macaron=macaron)
    names = apply_layer_scale([scaled], D, 1.0)
    branches = ["self_attn", "conv_module", "feed_forward"]
    if macaron:
        branches.insert(0, "feed_forward_macaron")
    assert names == [f"0.{b}.layer_scale" for b in branches]
    result = scaled.load_state_dict(reference.state_dict(), strict=False)
    assert sorted(result.missing_keys) == sorted(n[2:] for n in names)
    assert result.unexpected_keys == []
    inputs = encoder_inputs()
    assert torch.equal(run_encoder(scaled, inputs), run_encoder(reference, inputs))


def test_init_one_is_the_unmodified_decoder_layer_with_and_without_cache():
    reference = make_decoder_layer(seed=0)
    scaled = make_decoder_layer(seed=1)
    names = apply_layer_scale([scaled], D, 1.0)
    assert names == [
        "0.self_attn.layer_scale",
        "0.src_attn.layer_scale",
        "0.feed_forward.layer_scale",
    ]
    scaled.load_state_dict(reference.state_dict(), strict=False)
    tgt, tgt_mask, memory, memory_mask = decoder_inputs()
    expected = reference(tgt, tgt_mask, memory, memory_mask)[0]
    assert torch.equal(scaled(tgt, tgt_mask, memory, memory_mask)[0], expected)
    cache = reference(tgt[:, :-1], tgt_mask[:, :-1, :-1], memory, memory_mask)[0]
    cached = scaled(tgt, tgt_mask, memory, memory_mask, cache=cache)[0]
    expected = reference(tgt, tgt_mask, memory, memory_mask, cache=cache)[0]
    assert torch.equal(cached, expected)


def _encoder_branch_output(layer, branch, x, pos_emb, mask):
    """Unscaled contribution F(norm(x)) of one branch, incl. the macaron 0.5."""
    if branch == "feed_forward_macaron":
        return 0.5 * layer.feed_forward_macaron(layer.norm_ff_macaron(x))
    if branch == "self_attn":
        h = layer.norm_mha(x)
        return layer.self_attn(h, h, h, pos_emb, mask)
    if branch == "conv_module":
        return layer.conv_module(layer.norm_conv(x))
    return 0.5 * layer.feed_forward(layer.norm_ff(x))


@pytest.mark.parametrize(
    "branch", ["feed_forward_macaron", "self_attn", "conv_module", "feed_forward"]
)
def test_encoder_branch_is_scaled(branch):
    reference = make_encoder_layer(seed=2)
    for other in _BRANCH_LAST:
        if other != branch and hasattr(reference, other):
            zero_branch(reference, other)
    scaled = copy.deepcopy(reference)
    apply_layer_scale([scaled], D, 0.1)
    inputs = encoder_inputs()
    x, pos_emb, mask = inputs
    delta = _encoder_branch_output(reference, branch, x, pos_emb, mask)
    assert delta.abs().max() > 1e-2  # the branch contributes
    # only this branch is non-zero: out = norm_final(x + λ ⊙ F(norm(x)))
    expected = reference.norm_final(x + 0.1 * delta)
    torch.testing.assert_close(run_encoder(scaled, inputs), expected, rtol=0, atol=1e-6)
    assert not torch.allclose(run_encoder(reference, inputs), expected, atol=1e-3)
    # per-channel: λ acts along the last (channel) dimension
    lam = torch.linspace(-1.0, 2.0, D)
    with torch.no_grad():
        getattr(scaled, branch).layer_scale.copy_(lam)
    expected = reference.norm_final(x + lam * delta)
    torch.testing.assert_close(run_encoder(scaled, inputs), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("branch", ["self_attn", "src_attn", "feed_forward"])
def test_decoder_branch_is_scaled(branch):
    reference = make_decoder_layer(seed=3)
    for other in ("self_attn", "src_attn", "feed_forward"):
        if other != branch:
            zero_branch(reference, other)
    scaled = copy.deepcopy(reference)
    apply_layer_scale([scaled], D, 0.1)
    tgt, tgt_mask, memory, memory_mask = decoder_inputs()
    if branch == "self_attn":
        h = reference.norm1(tgt)
        delta = reference.self_attn(h, h, h, tgt_mask)
    elif branch == "src_attn":
        delta = reference.src_attn(reference.norm2(tgt), memory, memory, memory_mask)
    else:
        delta = reference.feed_forward(reference.norm3(tgt))
    assert delta.abs().max() > 1e-2
    out = scaled(tgt, tgt_mask, memory, memory_mask)[0]
    torch.testing.assert_close(out, tgt + 0.1 * delta, rtol=0, atol=1e-6)


def test_decoder_forward_with_cache_matches_full_forward():
    layer = make_decoder_layer(seed=4)
    apply_layer_scale([layer], D, 0.1)
    with torch.no_grad():
        layer.src_attn.layer_scale.copy_(torch.linspace(0.1, 1.0, D))
    tgt, tgt_mask, memory, memory_mask = decoder_inputs()
    full = layer(tgt, tgt_mask, memory, memory_mask)[0]
    cache = layer(tgt[:, :-1], tgt_mask[:, :-1, :-1], memory, memory_mask)[0]
    cached = layer(tgt, tgt_mask, memory, memory_mask, cache=cache)[0]
    assert cached.shape == (2, 4, D)
    torch.testing.assert_close(cached, full, rtol=0, atol=1e-6)
    unscaled = make_decoder_layer(seed=4)(tgt, tgt_mask, memory, memory_mask)[0]
    assert not torch.allclose(full, unscaled, atol=1e-3)


def test_espnet2_decoder_beam_search_scoring_with_layer_scale():
    from espnet2.asr.decoder.transformer_decoder import TransformerDecoder

    torch.manual_seed(5)
    decoder = TransformerDecoder(
        vocab_size=11, encoder_output_size=D, attention_heads=HEADS,
        linear_units=FF, num_blocks=2, use_flash_attn=False,
    ).eval()
    names = apply_layer_scale(decoder.decoders, D, 0.1)
    params = dict(decoder.decoders.named_parameters())
    assert len(names) == 6 and all(n in params for n in names)
    memory = torch.randn(1, 6, D)
    ys = torch.tensor([[10, 3, 7, 2]])
    logits = decoder(memory, torch.tensor([6]), ys, torch.tensor([4]))[0]
    full = torch.log_softmax(logits, dim=-1)[0]  # (4, vocab)
    states = [None]
    for t in range(1, 5):  # incremental decoding with the per-layer cache
        logp, states = decoder.batch_score(ys[:, :t], states, memory)
        torch.testing.assert_close(logp[0], full[t - 1], rtol=0, atol=1e-5)


def test_gradient_reaches_every_layer_scale():
    encoder = torch.nn.ModuleList([make_encoder_layer(seed=s) for s in (0, 1)]).train()
    decoder = torch.nn.ModuleList([make_decoder_layer(seed=2)]).train()
    enc_names = apply_layer_scale(encoder, D, 0.1)
    dec_names = apply_layer_scale(decoder, D, 0.1)
    x, pos_emb, mask = encoder_inputs()
    for layer in encoder:
        (x, pos_emb), mask = layer((x, pos_emb), mask)
    tgt, tgt_mask, _, _ = decoder_inputs()
    out = decoder[0](tgt, tgt_mask, x, mask)[0]
    out.pow(2).sum().backward()
    for names, container in ((enc_names, encoder), (dec_names, decoder)):
        params = dict(container.named_parameters())
        assert {n for n in params if n.endswith("layer_scale")} == set(names)
        for name in names:
            grad = params[name].grad
            assert grad is not None and grad.shape == (D,), name
            assert torch.isfinite(grad).all() and grad.abs().sum() > 0, name


@torch.no_grad()  # ESPnet's attention keeps its last `attn` (a graph node
# when grad is on), which deepcopy refuses, with or without LayerScale.
def test_state_dict_round_trip_deepcopy_and_pickle():
    layer = make_encoder_layer(seed=6)
    apply_layer_scale([layer], D, 0.1)
    layer.conv_module.layer_scale.copy_(torch.arange(1.0, D + 1) / D)
    inputs = encoder_inputs()
    expected = run_encoder(layer, inputs)

    buffer = io.BytesIO()
    torch.save(layer.state_dict(), buffer)
    buffer.seek(0)
    other = make_encoder_layer(seed=7)
    apply_layer_scale([other], D, 0.5)
    other.load_state_dict(torch.load(buffer))  # strict: same keys
    assert torch.equal(other.conv_module.layer_scale, layer.conv_module.layer_scale)
    assert torch.equal(run_encoder(other, inputs), expected)

    clone = copy.deepcopy(layer)
    assert torch.equal(run_encoder(clone, inputs), expected)
    clone.self_attn.layer_scale.mul_(3.0)  # the clone's hook uses its own λ
    assert not torch.allclose(run_encoder(clone, inputs), expected, atol=1e-4)
    assert torch.equal(run_encoder(layer, inputs), expected)

    buffer = io.BytesIO()
    torch.save(layer, buffer)  # whole module (hooks included) pickles
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    assert torch.equal(run_encoder(loaded, inputs), expected)


def test_tuple_output_scales_first_element():
    class Branch(torch.nn.Module):
        def forward(self, x):
            return x, "extra"

    branch = Branch()
    param = add_layer_scale(branch, 3, 0.5)
    assert param.shape == (3,) and torch.equal(param.data, torch.full((3,), 0.5))
    out, extra = branch(torch.ones(2, 3))
    assert torch.equal(out, torch.full((2, 3), 0.5)) and extra == "extra"


def test_bad_configs_raise():
    layer = make_encoder_layer()
    for init in (0.0, -0.1):
        with pytest.raises(ValueError, match="init_value"):
            apply_layer_scale([layer], D, init)
    with pytest.raises(ValueError, match="no residual branch"):
        apply_layer_scale([torch.nn.Linear(D, D)], D, 0.1)
    with pytest.raises(ValueError, match="concat_after"):
        apply_layer_scale([make_encoder_layer(concat_after=True)], D, 0.1)
    with pytest.raises(ValueError, match="size"):
        apply_layer_scale([layer], D + 1, 0.1)
    with pytest.raises(ValueError, match="dim"):
        add_layer_scale(torch.nn.Linear(2, 2), 0, 0.1)
    # twice on the same blocks: refused, and nothing is half-applied
    fresh = make_encoder_layer()
    shared = make_encoder_layer()
    fresh.feed_forward = shared.feed_forward  # a branch shared between blocks
    with pytest.raises(ValueError, match="already has LayerScale"):
        apply_layer_scale([shared, fresh], D, 0.1)
    assert not any(hasattr(getattr(m, b, None), "layer_scale")
                   for m in (shared, fresh) for b in LAYER_SCALE_BRANCHES)
    apply_layer_scale([layer], D, 0.1)
    with pytest.raises(ValueError, match="already has LayerScale"):
        apply_layer_scale([layer], D, 0.1)
