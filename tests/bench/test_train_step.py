"""Tests of the training-step benchmark (bench/train_step.py).

No timing is asserted: only that every variant is measured and that the
counted parameters, FLOPs and memory agree with values computed here from the
tiny configuration's shapes.
"""

import json

import pytest
import torch

from bench import train_step as benchmark

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
        flops = res["flops"]
        assert flops["train_total"] == flops["forward"] + flops["backward"]
        assert sum(flops["by_op"].values()) == flops["train_total"]
        assert 0 < res["profile"]["flop_ops_share"] < 1
        assert "aten::addmm" in res["profile"]["flop_ops"]
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
    # The profile splits the gap to the FLOP limit (see against_limit).
    share = variants["dense"]["profile"]["flop_ops_share"]
    name = "lr_sms_m010-020_f020-040"
    lr = tiny_result["against_limit"][name]
    assert 1 < lr["amdahl_limit"] < lr["flop_limit"]
    assert lr["amdahl_limit"] == pytest.approx(
        1 / ((1 - share) + share / lr["flop_limit"]))
    own = variants[name]["profile"]["flop_ops_share"]
    assert lr["matmul_speedup"] == pytest.approx(share / (lr["step_ratio"] * own))
    assert lr["rest_ratio"] == pytest.approx(
        lr["step_ratio"] * (1 - own) / (1 - share))
    # dense's step time = matmul part + rest; the variant's step is both scaled
    assert lr["step_ratio"] == pytest.approx(
        share / lr["matmul_speedup"] + (1 - share) * lr["rest_ratio"])
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
    # Forward matmuls of the dense tiny model, counted here from the shapes
    # (multiply-add = 2 FLOPs): encoder input layer, per Conformer block the
    # two macaron FFNs (2 linears each), q/k/v/out projections, the position
    # projection (of the 2T−1 relative positions, shared by the batch), QKᵀ
    # and AV over T×T and the relative-position term over T×(2T−1), the
    # convolution module's pointwise (D→2D, D→D) and depthwise (kernel 31,
    # "same" padding) convolutions; decoder self-attention over (L+1)² and
    # source attention over (L+1)×T with their projections (source k and v
    # of the T encoder frames), its FFN, the output layer; CTC's projection.
    rows_e, rows_d, inp, vocab, k = B * T, B * (L + 1), 32, 50, 31
    enc = (2 * rows_e * inp * D                       # input layer
           + 4 * 2 * rows_e * D * UNITS               # 2 FFNs x 2 linears
           + 4 * 2 * rows_e * D * D                   # q, k, v, out
           + 2 * (2 * T - 1) * D * D                  # pos projection
           + 4 * B * T * T * D + 2 * B * T * (2 * T - 1) * D
           + 2 * rows_e * D * 2 * D + 2 * rows_e * D * D  # pointwise convs
           + 2 * rows_e * D * k)                      # depthwise conv
    dec = (6 * 2 * rows_d * D * D + 2 * 2 * rows_e * D * D  # 8 projections
           + 4 * B * (L + 1) * (L + 1) * D + 4 * B * (L + 1) * T * D
           + 2 * 2 * rows_d * D * UNITS               # FFN
           + 2 * rows_d * D * vocab)                  # output layer
    ctc = 2 * rows_e * D * vocab
    assert dense["forward"] == enc + dec + ctc
    # the convolutions' backward: input and weight gradients, one forward each
    # (the depthwise one counted with its groups)
    assert dense["by_op"]["aten.convolution_backward"] == 2 * dense["by_op"]["aten.convolution"]
    # FFN-only low rank: rows x 2(mn − r(m+n)) less per FFN linear in the
    # forward, and twice that in the backward (gradients of input and weight).
    r = int(0.25 * D)
    per_row = 2 * (UNITS * D - r * (UNITS + D))
    expected = 4 * B * T * per_row + 2 * B * (L + 1) * per_row
    lr = v["lr_ffn_a025"]["flops"]
    assert dense["forward"] - lr["forward"] == expected
    assert dense["backward"] - lr["backward"] == 2 * expected
    for name, res in v.items():
        if res["kind"] == "lowrank":
            assert res["flops"]["train_total"] < dense["train_total"]
            assert tiny_result["against_limit"][name]["flop_limit"] > 1.0
        else:  # masks and scales are elementwise: the same matrix products
            assert res["flops"]["train_total"] == dense["train_total"], name


def test_full_depth_flops_extrapolate_exactly_to_the_batch():
    # The full-depth count runs batches of one and two utterances and
    # extrapolates; counting the whole batch directly gives the same number.
    conf = benchmark.BenchConfig.tiny()
    cache = {}
    full = benchmark.full_depth_counts("lr_sms_m010-020_f020-040", conf, cache)
    with benchmark.random_lowrank_init():
        model = benchmark.build_model(benchmark.VARIANTS["lr_sms_m010-020_f020-040"],
                                      conf, full_depth=True)
    whole = benchmark.count_step_flops(model, benchmark.make_batch(conf, torch.device("cpu")))
    assert full["flops"]["train_total"] == whole["train_total"]
    assert full["flops"]["forward"] == whole["forward"]
    assert full["theta"] == sum(p.numel() for p in model.parameters())
    # dense-matmul kinds share dense's count
    search = benchmark.full_depth_counts("msrs_search", conf, cache)
    dense = benchmark.full_depth_counts("dense", conf, cache)
    assert search["flops"] == dense["flops"] and set(cache) == {
        "dense", "lr_sms_m010-020_f020-040"}
    assert search["mask_logits"] > 0 and search["theta"] == dense["theta"]


def test_a_new_kind_plugs_in_with_a_per_step_hook(monkeypatch, tmp_path):
    # A kind whose on_step runs in every timed step.
    calls = []

    def attach(variant, conf):
        variant.on_step = lambda: calls.append(variant.name)

    monkeypatch.setitem(benchmark.KINDS, "counting", benchmark.Kind(attach=attach))
    monkeypatch.setitem(benchmark.VARIANTS, "counting",
                        {"kind": "counting", "paper": "test"})
    result = benchmark.main(["--tiny", "--variants", "dense,counting", "--warmup", "1",
                             "--repeats", "2", "--no_memory", "--no_profile",
                             "--out", str(tmp_path / "b.json")])
    assert calls == ["counting"] * 3  # one per round, warm-up included
    assert result["variants"]["counting"]["flops"] == result["variants"]["dense"]["flops"]


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


def test_sparse_baselines_time_ordinary_and_mask_update_steps(tiny_result):
    """Each Table 4 baseline: one ordinary and one mask-update step per round;
    the update's cost and its share of an update interval follow from the
    samples (CPU clock: one thread)."""
    import statistics

    v = tiny_result["variants"]
    dense = v["dense"]["params"]["theta"]
    masked = v["msrs_search"]["params"]["mask_logits"]  # every Linear/Conv weight
    for method in benchmark.SPARSE_BASELINES:
        res, lim = v[method], tiny_result["against_limit"][method]
        interval = 1000 if method == "chase" else 100  # the papers' ΔT
        assert res["update_interval"] == lim["update_interval"] == interval
        ordinary = res["time"]["step_cpu"]["samples"]
        update = res["time"]["update_step_cpu"]["samples"]
        assert len(ordinary) == len(update) == 2
        cost = statistics.median(u - o for u, o in zip(update, ordinary))
        assert lim["update_cost_s"] == pytest.approx(cost)
        assert lim["update_overhead"] == pytest.approx(
            cost / (interval * statistics.median(ordinary)))
        assert lim["step_ratio_amortised"] == pytest.approx(
            lim["step_ratio"] * (1 + lim["update_overhead"]))
        assert tiny_result["goals"][f"{method}_update_overhead"]["value"] == pytest.approx(
            lim["update_overhead"])
        assert res["flops"]["train_total"] == v["dense"]["flops"]["train_total"]
    # Counted as built: RigL and SET start from ERK masks with 40 % zeros of
    # the masked weights (an exact global budget); GMP starts dense.
    for method in ("rigl", "set"):
        zeros = dense - v[method]["params"]["nonzero_theta"]
        assert zeros == pytest.approx(0.4 * masked, rel=1e-3), method
    assert v["gmp"]["params"]["nonzero_theta"] == dense


def test_a_mask_update_step_that_updates_nothing_is_an_error(monkeypatch, tmp_path):
    def attach(variant, conf):
        variant.mask_updates = benchmark.MaskUpdates(10, lambda update: None, lambda: 0)

    monkeypatch.setitem(benchmark.KINDS, "idle", benchmark.Kind(attach=attach))
    monkeypatch.setitem(benchmark.VARIANTS, "idle", {"kind": "idle", "paper": "test"})
    with pytest.raises(RuntimeError, match="idle: the timed update step did not update"):
        benchmark.main(["--tiny", "--variants", "dense,idle", "--warmup", "0",
                        "--repeats", "1", "--no_memory", "--no_profile",
                        "--out", str(tmp_path / "b.json")])


def test_flush_denormal_is_on_for_the_run_only(monkeypatch, tmp_path):
    seen = []

    def attach(variant, conf):  # probes the FP mode inside the timed steps
        variant.on_step = lambda: seen.append(
            float(torch.tensor(1e-39) * torch.tensor(1.0)))

    monkeypatch.setitem(benchmark.KINDS, "probe", benchmark.Kind(attach=attach))
    monkeypatch.setitem(benchmark.VARIANTS, "probe", {"kind": "probe", "paper": "test"})
    result = benchmark.main(["--tiny", "--variants", "dense,probe", "--warmup", "0",
                             "--repeats", "1", "--no_memory", "--no_profile",
                             "--flush_denormal", "--out", str(tmp_path / "b.json")])
    assert result["config"]["flush_denormal"] is True
    assert seen == [0.0]  # the subnormal product was flushed during the run
    assert float(torch.tensor(1e-39) * torch.tensor(1.0)) > 0  # and not after it
