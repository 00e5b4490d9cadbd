"""Tests of the training-step benchmark (espnet_msrs.bin.benchmark).

No timing is asserted: only that every variant is measured and that the
counted parameters, FLOPs and memory agree with values computed here from the
tiny configuration's shapes.
"""

import json

import pytest

from espnet_msrs.bin import benchmark

D, UNITS, B, T, L = 64, 256, 2, 20, 5  # the --tiny model and batch


def test_depth_equivalent_alpha_keeps_the_full_models_ranks():
    # 12 -> 2 blocks: the kept blocks stand for blocks 2.5 and 8.5 of 12.
    a_i, a_f = benchmark.depth_equivalent_alpha([0.1, 0.2], 12, 2)
    full = [0.1 + b * 0.1 / 12 for b in (2.5, 8.5)]
    kept = [a_i + b * (a_f - a_i) / 2 for b in (0, 1)]
    assert kept == pytest.approx(full)
    # the mean alpha of the kept blocks is the mean over the 12 blocks
    assert sum(kept) / 2 == pytest.approx(sum(0.1 + b * 0.1 / 12 for b in range(12)) / 12)
    # a single decoder block gets the mean of the 6-block schedule
    (alpha, _) = benchmark.depth_equivalent_alpha([0.2, 0.5], 6, 1)
    assert alpha == pytest.approx(sum(0.2 + b * 0.3 / 6 for b in range(6)) / 6)
    assert benchmark.depth_equivalent_alpha(0.25, 12, 2) == 0.25
    assert benchmark.depth_equivalent_alpha([0.1, 0.2], 6, 6) == [0.1, 0.2]
    assert benchmark.depth_equivalent_alpha(None, 12, 2) is None


def test_bad_options_raise():
    with pytest.raises(ValueError, match="adamw_impl"):
        benchmark.config_from_args(
            benchmark.get_parser().parse_args(["--tiny", "--adamw_impl", "sgd"])
        )
    with pytest.raises(ValueError, match="unknown"):
        benchmark.run_benchmark(benchmark.BenchConfig.tiny(), ["dense", "lora"])


@pytest.fixture(scope="module")
def tiny_result(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    returned = benchmark.main(
        ["--tiny", "--threads", "1", "--warmup", "0", "--repeats", "2",
         "--out", str(out)]
    )
    written = json.loads(out.read_text())
    assert written["variants"].keys() == returned["variants"].keys()
    return written


def test_every_variant_is_measured(tiny_result):
    variants = tiny_result["variants"]
    assert list(variants) == list(benchmark.VARIANTS)
    for name, res in variants.items():
        for phase in ("step", "step_cpu", "forward", "backward", "optimizer"):
            stats = res["time"][phase]
            assert stats["n"] == 2 and len(stats["samples"]) == 2
            assert 0 < stats["min"] <= stats["median"] <= stats["max"]
        assert res["memory"]["peak_mb"] >= res["memory"]["resident_mb"] > 0
        assert res["flops"]["train_total"] == 3 * res["flops"]["total"]
        limits = tiny_result["against_limit"][name]
        assert limits["speedup"] > 0 and limits["flop_limit"] > 0
        # one thread on CPU: ratios of per-round CPU times
        assert limits["basis"] == tiny_result["timing_basis"] == "cpu"
        ratios = sorted(s / d for s, d in zip(
            res["time"]["step_cpu"]["samples"],
            variants["dense"]["time"]["step_cpu"]["samples"]))
        assert limits["step_ratio"] == pytest.approx(sum(ratios) / 2)  # median of 2
        assert limits["speedup"] == pytest.approx(1 / limits["step_ratio"])
    assert tiny_result["against_limit"]["dense"]["flop_limit"] == 1.0
    # CPU: the dense step's matmul share bounds the low-rank speed-up (Amdahl)
    share = tiny_result["variants"]["dense"]["memory"]["matmul_time_share"]
    assert 0 < share < 1
    lr = tiny_result["against_limit"]["lr_sms_m010-020_f020-040"]
    assert 1 < lr["amdahl_limit"] < lr["flop_limit"]
    assert lr["amdahl_limit"] == pytest.approx(
        1 / ((1 - share) + share / lr["flop_limit"]))
    assert set(tiny_result["goals"]) == set(benchmark.GOALS)
    assert tiny_result["machine"]["torch_threads"] == 1


def test_parameter_counts(tiny_result):
    v = tiny_result["variants"]
    dense = v["dense"]["params"]["theta"]
    # LayerScale: one D-vector per residual branch, 4 per Conformer block
    # (macaron FFN, MHSA, conv, FFN) and 3 per decoder block.
    assert v["layerscale"]["params"]["theta"] - dense == D * (4 + 3)
    # The search masks every Linear/Conv weight: φ has their size, θ is dense.
    search = v["msrs_search"]["params"]
    assert search["theta"] == dense and 0 < search["mask_logits"] < dense
    # Sparse retraining keeps 60 % of the same weights.
    sparse = v["msrs_sparse"]["params"]
    assert sparse["theta"] == dense
    assert dense - sparse["nonzero_theta"] == pytest.approx(
        0.4 * search["mask_logits"], rel=1e-3
    )
    for name, res in v.items():
        if res["kind"] == "lowrank":
            assert res["params"]["theta"] < dense
            assert res["full_depth"]["theta"] < v["dense"]["full_depth"]["theta"]
    # FFN-only alpha 0.25: each FFN linear (m x n) becomes r (m + n), r = 16.
    r = int(0.25 * D)
    saved = (4 + 2) * (UNITS * D - r * (UNITS + D))  # 4 encoder + 2 decoder linears
    assert dense - v["lr_ffn_a025"]["params"]["theta"] == saved


def test_flop_counts(tiny_result):
    v = tiny_result["variants"]
    dense = v["dense"]["flops"]
    # Attention matmuls: encoder QKᵀ + AV over T×T, the relative-position
    # term over T×(2T−1); decoder self-attention over (L+1)² and source
    # attention over (L+1)×T.
    enc = 4 * B * T * T * D + 2 * B * T * (2 * T - 1) * D
    dec = 4 * B * (L + 1) * (L + 1) * D + 4 * B * (L + 1) * T * D
    assert dense["attention"] == enc + dec
    # FFN-only low rank: rows x (2mn − 2r(m+n)) less per FFN linear.
    r = int(0.25 * D)
    per_row = 2 * (UNITS * D - r * (UNITS + D))
    expected = 4 * B * T * per_row + 2 * B * (L + 1) * per_row
    assert dense["linear"] - v["lr_ffn_a025"]["flops"]["linear"] == expected
    for name, res in v.items():
        if res["kind"] == "lowrank":
            assert res["flops"]["total"] < dense["total"]
            assert tiny_result["against_limit"][name]["flop_limit"] > 1.0
        else:
            assert res["flops"]["total"] == dense["total"]
    # Only the sparse model has zero weights to skip.
    assert v["msrs_sparse"]["flops"]["nonzero_linear"] < dense["linear"]
    assert dense["nonzero_linear"] == dense["linear"]


def test_resident_memory_is_parameters_and_adam_states(tiny_result):
    dense = tiny_result["variants"]["dense"]
    theta = dense["params"]["theta"]
    resident = dense["memory"]["resident_mb"] * 2**20
    # fp32 θ + AdamW's two moments; the rest (step counters, BatchNorm
    # buffers) is a few hundred bytes.
    assert 12 * theta <= resident < 12 * theta + 4096
    search = tiny_result["variants"]["msrs_search"]
    phi = search["params"]["mask_logits"]
    assert search["memory"]["resident_mb"] * 2**20 >= 12 * (theta + phi)
