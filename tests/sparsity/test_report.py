"""Tests of the MSRS sparsity reports."""

import json

import pytest
import torch
from torch import nn

from espnet_msrs.sparsity.folding import strip_masks
from espnet_msrs.sparsity.selection import apply_masks, masked_modules
from espnet_msrs.sparsity.report import (
    format_report,
    group_of,
    model_sparsity_report,
    sparsity_report,
)


@pytest.mark.parametrize(
    "name,group",
    [
        ("frontend.video.conv3d.weight", "frontend"),
        ("frontend.fusion.0.weight", "fusion"),
        ("fusion_mlp.2.weight", "fusion"),
        ("encoder.embed.out.0.weight", "encoder.input"),
        ("encoder.encoders.0.feed_forward.w_1.weight", "encoder.block0"),
        ("encoder.encoders.11.self_attn.linear_q.bias", "encoder.block11"),
        ("decoder.decoders.5.src_attn.linear_k.weight", "decoder.block5"),
        ("ctc.ctc_lo.weight", "output"),
        ("decoder.output_layer.weight", "output"),
        ("decoder.embed.0.weight", "output"),
        ("encoder.after_norm.weight", "encoder.other"),
        ("decoder.after_norm.bias", "decoder.other"),
        ("normalize.mean", "other"),
    ],
)
def test_group_of(name, group):
    assert group_of(name) == group


def _toy_params():
    return {
        "frontend.conv.weight": torch.ones(2, 3),
        "encoder.encoders.0.ff.weight": torch.ones(4, 4),
        "encoder.encoders.0.ff.mask_logits": torch.ones(4, 4),
        "encoder.encoders.0.ff.bias": torch.zeros(4),
        "decoder.output_layer.weight": torch.ones(3, 4),
    }


def test_report_with_known_masks():
    masks = {
        "frontend.conv.weight": torch.tensor([[1, 0, 1], [0, 1, 1]]).bool(),
        "encoder.encoders.0.ff.weight": torch.eye(4).bool(),  # 12 zeros
        "decoder.output_layer.weight": torch.ones(3, 4).bool(),
    }
    report = sparsity_report(_toy_params(), masks)
    json.dumps(report)
    assert "encoder.encoders.0.ff.mask_logits" not in report["params"]
    assert report["params"]["frontend.conv.weight"] == {
        "numel": 6, "zeros": 2, "nonzeros": 4, "sparsity": pytest.approx(1 / 3),
        "group": "frontend", "prunable": True,
    }
    bias = report["params"]["encoder.encoders.0.ff.bias"]
    assert bias["zeros"] == 0 and not bias["prunable"]
    assert report["prunable"] == {
        "numel": 34, "zeros": 14, "nonzeros": 20, "sparsity": pytest.approx(14 / 34)
    }
    assert report["all_params"] == {
        "numel": 38, "zeros": 14, "nonzeros": 24, "sparsity": pytest.approx(14 / 38)
    }
    block = report["groups"]["encoder.block0"]
    assert block["prunable"]["numel"] == 16 and block["prunable"]["zeros"] == 12
    assert block["all_params"]["numel"] == 20
    assert block["all_params"]["sparsity"] == pytest.approx(12 / 20)
    assert list(report["groups"]) == ["frontend", "encoder.block0", "output"]
    assert report["groups"]["output"]["prunable"]["sparsity"] == 0.0


def test_report_without_masks_counts_exact_zeros_of_weights():
    params = _toy_params()
    params["frontend.conv.weight"][0, :2] = 0.0
    params["encoder.encoders.0.ff.weight"][1, 1] = -0.0
    report = sparsity_report(params)
    # The all-zero bias is not prunable and contributes no zeros.
    assert report["prunable"]["numel"] == 34 and report["prunable"]["zeros"] == 3
    assert report["all_params"]["numel"] == 38 and report["all_params"]["zeros"] == 3
    only = sparsity_report(params, prunable=["frontend.conv.weight"])
    assert only["prunable"] == {"numel": 6, "zeros": 2, "nonzeros": 4,
                                "sparsity": pytest.approx(1 / 3)}
    with pytest.raises(ValueError, match="nope"):
        sparsity_report(params, masks={"nope.weight": torch.ones(1).bool()})


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Module()
        self.encoder.encoders = nn.ModuleList([nn.Linear(4, 4), nn.Linear(4, 4)])
        self.encoder.after_norm = nn.LayerNorm(4)
        self.ctc = nn.Module()
        self.ctc.ctc_lo = nn.Linear(4, 3)


def test_model_report_masked_and_folded_agree():
    torch.manual_seed(0)
    model = Tiny()
    apply_masks(model, include=r"encoder\.encoders")
    block0 = masked_modules(model)["encoder.encoders.0"]
    with torch.no_grad():
        block0.mask_logits.fill_(0.1)
        block0.mask_logits[0].fill_(-0.1)  # 4 zeros
        masked_modules(model)["encoder.encoders.1"].mask_logits.fill_(-1.0)  # 16
    report = model_sparsity_report(model)
    assert report["prunable"]["numel"] == 32 and report["prunable"]["zeros"] == 20
    # all: 2*(16+4) + LayerNorm 8 + ctc 15 = 63, mask_logits excluded
    assert report["all_params"]["numel"] == 63
    assert report["groups"]["encoder.block1"]["prunable"]["sparsity"] == 1.0
    assert report["groups"]["encoder.block0"]["prunable"]["sparsity"] == 0.25
    strip_masks(model)
    folded = model_sparsity_report(model)
    # Folded: every Linear is prunable, zeros are exact 0.0 weights.
    assert folded["prunable"]["numel"] == 32 + 12
    assert folded["prunable"]["zeros"] == 20
    assert folded["all_params"] == report["all_params"]
    table = format_report(folded)
    lines = table.splitlines()
    assert lines[0].split()[0] == "group"
    assert [line.split()[0] for line in lines[2:5]] == [
        "encoder.block0", "encoder.block1", "encoder.other"]
    assert "100.00%" in lines[3]
    assert lines[-1].split()[0] == "total" and "31.75%" in lines[-1]
