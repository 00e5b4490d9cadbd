"""Tests of espnet_msrs.bin.plot_sparsity (MSRS Fig. 3 layout)."""

import json

import pytest
import torch

from espnet_msrs.bin import plot_sparsity
from espnet_msrs.sparsity.report import sparsity_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _model_params():
    shapes = {
        "frontend.conv.weight": (4, 3),
        "frontend.conv.bias": (4,),
        "encoder.embed.out.0.weight": (6, 4),
        "encoder.encoders.0.self_attn.linear_q.weight": (6, 6),
        "encoder.encoders.0.feed_forward.w_1.weight": (8, 6),
        "encoder.encoders.0.norm_ff.weight": (6,),
        "encoder.encoders.1.self_attn.linear_q.weight": (6, 6),
        "encoder.encoders.1.feed_forward.w_1.weight": (8, 6),
        "decoder.decoders.0.src_attn.linear_k.weight": (6, 6),
        "ctc.ctc_lo.weight": (5, 6),
    }
    return {n: torch.ones(s) for n, s in shapes.items()}


def _masks(params, zeros):
    """Masks with the first ``zeros[name]`` entries pruned."""
    masks = {}
    for name, count in zeros.items():
        mask = torch.ones(params[name].numel(), dtype=torch.bool)
        mask[:count] = False
        masks[name] = mask.view(params[name].shape)
    return masks


ZEROS_A = {
    "frontend.conv.weight": 6,
    "encoder.embed.out.0.weight": 0,
    "encoder.encoders.0.self_attn.linear_q.weight": 9,
    "encoder.encoders.0.feed_forward.w_1.weight": 12,
    "encoder.encoders.1.self_attn.linear_q.weight": 27,
    "encoder.encoders.1.feed_forward.w_1.weight": 0,
    "decoder.decoders.0.src_attn.linear_k.weight": 18,
    "ctc.ctc_lo.weight": 3,
}


def _write_report(path, zeros):
    params = _model_params()
    report = sparsity_report(params, masks=_masks(params, zeros))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report))
    return path


def test_groups_layers_png_and_json(tmp_path):
    first = _write_report(tmp_path / "exp" / "run_a" / "mask_search"
                          / "sparsity_report.json", ZEROS_A)
    zeros_b = {k: 0 for k in ZEROS_A}
    second = _write_report(tmp_path / "exp" / "run_b" / "mask_search"
                           / "sparsity_report.json", zeros_b)
    out = tmp_path / "fig3.png"
    result = plot_sparsity.main(["--report", str(first), f"dense={second}",
                                 "--out", str(out)])
    assert out.read_bytes()[:8] == PNG_MAGIC and out.stat().st_size > 1000
    written = json.loads(out.with_suffix(".json").read_text())
    assert written == json.loads(json.dumps(result))

    a, b = written["reports"]
    assert (a["label"], b["label"]) == ("run_a/mask_search", "dense")
    groups = a["groups"]
    # independent arithmetic from the masks above
    assert groups["frontend"]["prunable"]["sparsity"] == pytest.approx(6 / 12)
    assert groups["encoder.input"]["prunable"]["sparsity"] == 0.0
    enc = (9 + 12 + 27 + 0) / (36 + 48 + 36 + 48)
    assert groups["encoder.block"]["prunable"]["sparsity"] == pytest.approx(enc)
    assert groups["decoder.block"]["prunable"]["sparsity"] == pytest.approx(18 / 36)
    assert groups["output"]["prunable"]["sparsity"] == pytest.approx(3 / 30)
    # all-parameter sparsity also counts the norm weight and the bias
    assert groups["encoder.block"]["all_params"]["numel"] == 168 + 6
    assert groups["frontend"]["all_params"]["numel"] == 16
    layers = a["encoder_block_layers"]
    assert layers["self_attn.linear_q"]["sparsity"] == pytest.approx(36 / 72)
    assert layers["self_attn.linear_q"]["blocks"] == 2
    assert layers["feed_forward.w_1"]["sparsity"] == pytest.approx(12 / 96)
    assert "norm_ff" not in layers  # not prunable
    assert a["decoder_block_layers"]["src_attn.linear_k"]["sparsity"] == 0.5
    assert b["groups"]["encoder.block"]["prunable"]["sparsity"] == 0.0
    assert written["panels"]["groups"] == [
        "frontend", "encoder.input", "encoder.block", "decoder.block", "output"
    ]


def test_not_a_report_raises(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text(json.dumps({"sparsity": 0.3}))
    with pytest.raises(ValueError, match="not a sparsity report"):
        plot_sparsity.main(["--report", str(bad), "--out", str(tmp_path / "f.png")])
    with pytest.raises(ValueError, match="does not exist"):
        plot_sparsity.main(["--report", str(tmp_path / "missing.json"),
                            "--out", str(tmp_path / "f.png")])


def test_fig3_from_run_directories(tmp_path):
    """MSRS Fig. 3: MSRS (mask search), ERK (a RigL run) and GMP side by side
    from the experiment directories, first panel limited to three groups."""
    zeros_erk = dict(ZEROS_A, **{"frontend.conv.weight": 2})
    zeros_gmp = {k: v // 2 for k, v in ZEROS_A.items()}
    _write_report(tmp_path / "exp" / "msrs" / "mask_search" / "sparsity_report.json", ZEROS_A)
    _write_report(tmp_path / "exp" / "rigl" / "train" / "sparsity_report.json", zeros_erk)
    _write_report(tmp_path / "exp" / "gmp" / "train" / "sparsity_report.json", zeros_gmp)
    out = tmp_path / "fig3.png"
    result = plot_sparsity.main([
        "--run", str(tmp_path / "exp" / "msrs"), f"erk={tmp_path / 'exp' / 'rigl'}",
        "--run", f"gmp={tmp_path / 'exp' / 'gmp'}",
        "--groups", "frontend", "encoder.block", "decoder.block", "--out", str(out),
    ])
    assert out.read_bytes()[:8] == PNG_MAGIC
    written = json.loads(out.with_suffix(".json").read_text())
    assert written["panels"]["groups"] == ["frontend", "encoder.block", "decoder.block"]
    labels = [r["label"] for r in written["reports"]]
    assert labels == ["msrs", "erk", "gmp"]
    sparsity = {r["label"]: {g: v["prunable"]["sparsity"] for g, v in r["groups"].items()}
                for r in written["reports"]}
    assert sparsity["msrs"]["frontend"] == pytest.approx(6 / 12)
    assert sparsity["erk"]["frontend"] == pytest.approx(2 / 12)
    assert sparsity["gmp"]["frontend"] == pytest.approx(3 / 12)
    assert sparsity["gmp"]["decoder.block"] == pytest.approx(9 / 36)
    assert written["reports"][1]["path"].endswith("rigl/train/sparsity_report.json")


def test_run_without_report_raises(tmp_path):
    (tmp_path / "exp" / "empty").mkdir(parents=True)
    with pytest.raises(ValueError, match="no sparsity report"):
        plot_sparsity.main(["--run", str(tmp_path / "exp" / "empty"),
                            "--out", str(tmp_path / "f.png")])
    with pytest.raises(SystemExit):
        plot_sparsity.main(["--out", str(tmp_path / "f.png")])
