"""linear_policy: suspicious but valid α settings are accepted with a warning
naming the config key (issue 11 item 5)."""

import logging

import pytest
import torch

from espnet_msrs.layers.linear_policy import convert_block_linears


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


@pytest.mark.parametrize("kind", ["dense", "masked"])
def test_alpha_without_lowrank_layers_warns(kind, caplog):
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
