"""Tests of the MHSA/FFN layer groups of Conformer/Transformer blocks and
their LR-SMS low-rank conversion (LR-SMS eq. 2); suspicious but valid α
settings are accepted with a warning naming the config key (issue 11 item 5)."""

import logging

import pytest
import torch
from torch import nn

from espnet_msrs.layers.linear_groups import (
    convert_block_linears,
    linear_group,
    rank_summary,
    validate_linear_types,
)
from espnet_msrs.lowrank.lowrank_linear import LowRankLinear


def _block(d=8, units=16):
    block = nn.Module()
    block.self_attn = nn.Module()
    for name in ("linear_q", "linear_k", "linear_v", "linear_out", "linear_pos"):
        setattr(block.self_attn, name, nn.Linear(d, d))
    block.feed_forward = nn.Module()
    block.feed_forward.w_1 = nn.Linear(d, units)
    block.feed_forward.w_2 = nn.Linear(units, d)
    block.norm = nn.LayerNorm(d)
    return block


@pytest.mark.parametrize(
    "name, group",
    [("self_attn.linear_q", "mhsa"), ("src_attn.linear_pos", "mhsa"),
     ("feed_forward.w_1", "ffn"), ("feed_forward_macaron.w_2", "ffn"),
     ("conv_module.pointwise_conv1", None), ("self_attn.linear_q.x", None),
     ("norm", None)],
)
def test_linear_group_names(name, group):
    assert linear_group(name) == group


def test_lowrank_ranks_follow_eq2_per_block_and_dense_is_untouched():
    torch.manual_seed(0)
    blocks = nn.ModuleList([_block(), _block()])
    dense_ffn = blocks[0].feed_forward.w_1
    plan = convert_block_linears(blocks, {"mhsa": "lowrank", "ffn": "dense"},
                                 {"mhsa": [0.25, 0.5]}, where="encoder_conf")
    # alpha_b = 0.25 + b (0.5 - 0.25) / 2; r = int(alpha_b * 8)
    assert plan["0.self_attn.linear_q"] == {"group": "mhsa", "type": "lowrank",
                                            "shape": (8, 8), "rank": 2}
    assert plan["1.self_attn.linear_pos"]["rank"] == 3
    assert isinstance(blocks[1].self_attn.linear_k, LowRankLinear)
    assert blocks[0].feed_forward.w_1 is dense_ffn
    assert plan["0.feed_forward.w_1"] == {"group": "ffn", "type": "dense",
                                          "shape": (16, 8), "rank": 8}
    assert len(plan) == 2 * 7
    assert "1.self_attn.linear_pos lowrank 8x8 rank=3" in rank_summary(plan)


@pytest.mark.parametrize(
    "types, match",
    [({"attn": "dense"}, r"decoder_conf: unknown layer group 'attn'"),
     ({"ffn": "svd"}, r"decoder_conf: ffn_linear='svd' is not a linear type"),
     ({"ffn": "masked"}, r"ffn_linear='masked'.*chosen by --msrs_conf include/exclude")],
)
def test_bad_types_name_the_key(types, match):
    with pytest.raises(ValueError, match=match):
        validate_linear_types(types, "decoder_conf")


def test_lowrank_group_that_matches_nothing_raises():
    block = nn.Module()
    block.feed_forward = nn.Module()
    block.feed_forward.w_1 = nn.Conv1d(4, 4, 1)  # not a Linear
    with pytest.raises(ValueError, match="ffn_linear='lowrank' matched no layer in 1"):
        convert_block_linears([block], {"ffn": "lowrank"}, {"ffn": 0.5})


# ------------------------------------------------ suspicious α settings
def _blocks(n=2, d=8):
    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.feed_forward = torch.nn.Module()
            self.feed_forward.w_1 = torch.nn.Linear(d, 2 * d)
            self.feed_forward.w_2 = torch.nn.Linear(2 * d, d)

    return torch.nn.ModuleList(Block() for _ in range(n))


def test_reversed_alpha_warns_and_still_builds(caplog):
    with caplog.at_level(logging.WARNING):
        plan = convert_block_linears(_blocks(), {"ffn": "lowrank"}, {"ffn": [0.5, 0.25]},
                                     where="encoder_conf")
    assert "encoder_conf.ffn_alpha=[0.5, 0.25]: α_i > α_f" in caplog.text
    assert [plan[f"{b}.feed_forward.w_1"]["rank"] for b in (0, 1)] == [4, 3]


def test_alpha_without_lowrank_layers_warns(caplog):
    kind = "dense"
    with caplog.at_level(logging.WARNING):
        plan = convert_block_linears(_blocks(), {"ffn": kind}, {"ffn": 0.25},
                                     where="decoder_conf")
    assert (f"decoder_conf.ffn_alpha=[0.25, 0.25] has no effect: "
            f"decoder_conf.ffn_linear is '{kind}'") in caplog.text
    assert plan["0.feed_forward.w_1"]["rank"] == 8


def test_plain_settings_do_not_warn(caplog):
    with caplog.at_level(logging.WARNING):
        convert_block_linears(_blocks(), {"ffn": "lowrank"}, {"ffn": [0.25, 0.5]})
        convert_block_linears(_blocks(), {"ffn": "dense"}, {})
    assert caplog.text == ""
