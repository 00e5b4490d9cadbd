"""Tests of espnet_msrs.bin.plot_rank_energy (LR-SMS Figs. 1 and 3)."""

import json

import numpy as np
import pytest
import torch

from espnet_msrs.bin import plot_rank_energy

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _with_singular_values(s, seed):
    """8x8 matrix with the given singular values (random orthogonal factors)."""
    gen = torch.Generator().manual_seed(seed)
    q1, _ = torch.linalg.qr(torch.randn(8, 8, generator=gen, dtype=torch.float64))
    q2, _ = torch.linalg.qr(torch.randn(8, 8, generator=gen, dtype=torch.float64))
    return (q1 @ torch.diag(torch.tensor(s, dtype=torch.float64)) @ q2.T).float()


def _needed(weight, energy=0.95):
    """Independent reference: numpy SVD and a Python loop."""
    s = np.linalg.svd(np.asarray(weight, dtype=np.float64), compute_uv=False)
    total, acc = float((s**2).sum()), 0.0
    for k, value in enumerate(s, start=1):
        acc += value**2
        if acc >= energy * total * (1 - 1e-12):
            return k
    return len(s)


def _state(seed):
    gen = torch.Generator().manual_seed(seed)
    q = _with_singular_values([3, 2, 1, 0.5, 0.1, 0.1, 0.1, 0.1], seed)
    u, v = torch.randn(16, 2, generator=gen), torch.randn(2, 8, generator=gen)
    theta = torch.randn(8, 8, generator=gen)
    phi = torch.randn(8, 8, generator=gen)
    return {
        "encoder.encoders.0.self_attn.linear_q.weight": q,
        "encoder.encoders.0.self_attn.linear_q.bias": torch.zeros(8),
        "encoder.encoders.0.conv_module.pointwise_conv1.weight": torch.randn(16, 8, 1),
        "encoder.encoders.1.feed_forward.w_1.lowrank_u.weight": u,
        "encoder.encoders.1.feed_forward.w_1.lowrank_u.bias": torch.zeros(16),
        "encoder.encoders.1.feed_forward.w_1.lowrank_v.weight": v,
        "decoder.decoders.0.src_attn.linear_v.weight": theta,
        "decoder.decoders.0.src_attn.linear_v.mask_logits": phi,
        "ctc.ctc_lo.weight": torch.randn(5, 8),
    }


def test_ratios_by_depth_and_checkpoint(tmp_path):
    late, early = _state(1), _state(2)
    torch.save(late, tmp_path / "10epoch.pth")
    torch.save({"model": early, "optimizers": []}, tmp_path / "2epoch.pth")
    out = tmp_path / "rank.png"
    result = plot_rank_energy.main([
        "--checkpoint", str(tmp_path / "10epoch.pth"), str(tmp_path / "2epoch.pth"),
        "--out", str(out),
    ])
    assert out.read_bytes()[:8] == PNG_MAGIC and out.stat().st_size > 1000
    written = json.loads(out.with_suffix(".json").read_text())
    assert written == json.loads(json.dumps(result))
    assert [c["label"] for c in written["checkpoints"]] == ["2epoch", "10epoch"]

    ckpt = written["checkpoints"][1]  # 10epoch = _state(1)
    layers = {x["name"]: x for x in ckpt["layers"]}
    assert set(layers) == {
        "encoder.encoders.0.self_attn.linear_q",
        "encoder.encoders.1.feed_forward.w_1",
        "decoder.decoders.0.src_attn.linear_v",
    }
    q = layers["encoder.encoders.0.self_attn.linear_q"]
    # σ² = 9, 4, 1, 0.25, 4 × 0.01: 9 + 4 + 1 = 14 >= 0.95 · 14.29
    assert (q["needed"], q["total"], q["ratio"]) == (3, 8, 3 / 8)
    assert q["needed"] == _needed(late["encoder.encoders.0.self_attn.linear_q.weight"])
    assert (q["group"], q["type"], q["block"], q["sub"]) == ("mhsa", "dense", 0,
                                                             "encoder")
    ffn = layers["encoder.encoders.1.feed_forward.w_1"]
    dense_equiv = (late["encoder.encoders.1.feed_forward.w_1.lowrank_u.weight"]
                   @ late["encoder.encoders.1.feed_forward.w_1.lowrank_v.weight"])
    assert (ffn["type"], ffn["rank"], ffn["shape"], ffn["total"]) == (
        "lowrank", 2, [16, 8], 8)
    assert ffn["needed"] == _needed(dense_equiv) and ffn["needed"] <= 2
    v = layers["decoder.decoders.0.src_attn.linear_v"]
    masked = (late["decoder.decoders.0.src_attn.linear_v.weight"]
              * (late["decoder.decoders.0.src_attn.linear_v.mask_logits"] >= 0))
    assert v["type"] == "masked" and v["needed"] == _needed(masked)

    fams = ckpt["families"]
    assert fams["encoder.mhsa"]["blocks"] == [0]
    assert fams["encoder.mhsa"]["depth"] == [0.0]
    assert fams["encoder.ffn"]["depth"] == [0.5]  # block 1 of 2
    assert fams["encoder.ffn"]["mean"] == pytest.approx(ffn["ratio"])
    assert fams["decoder.mhsa"]["mean"] == pytest.approx(v["ratio"])
    assert "decoder.ffn" not in fams


def test_energy_option_and_errors(tmp_path):
    torch.save(_state(3), tmp_path / "a.pth")
    result = plot_rank_energy.main(["--checkpoint", f"best={tmp_path / 'a.pth'}",
                                    "--out", str(tmp_path / "r.png"),
                                    "--energy", "0.6"])
    q = result["checkpoints"][0]["layers"][0]
    assert result["checkpoints"][0]["label"] == "best"
    assert q["needed"] == 1  # 9 / 14.29 = 0.63 >= 0.6
    with pytest.raises(ValueError, match="energy"):
        plot_rank_energy.main(["--checkpoint", str(tmp_path / "a.pth"),
                               "--out", str(tmp_path / "r.png"), "--energy", "0"])
    torch.save({"ctc.ctc_lo.weight": torch.ones(2, 2)}, tmp_path / "b.pth")
    with pytest.raises(ValueError, match="no MHSA/FFN linear"):
        plot_rank_energy.main(["--checkpoint", str(tmp_path / "b.pth"),
                               "--out", str(tmp_path / "r.png")])
    assert plot_rank_energy.energy_rank(torch.zeros(3, 4)) == (0, 3)
