"""The study scripts of egs2/synthgrid/study1 at micro size, and the verdict rules.

``local/table1.sh --micro`` runs two cells of MSRS Table 1 (dense, and MSRS
mask search + sparse retraining; one seed, one epoch each) on a corpus of
2 speakers × 8 sentences in a sandbox copy of the study recipe, then writes
results/table1.json, the Fig. 1 plot and STUDY.md from the cells' artifacts.
A second run must redo no cell. About 3 minutes on 2 CPU cores.

The verdict rules of the study's protocol (README.md) are checked on
hand-made numbers.
"""

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
STUDY = REPO / "egs2" / "synthgrid" / "study1"
OUTPUTS = ("data", "dump", "exp", "downloads", "RESULTS.md", "results", "figures", "STUDY.md",
           "DISCUSSION.md")
MICRO_DATA = "--num_speakers 2 --utts_per_speaker 8 --num_valid 1 --num_test 2 --seed 0 --nj 2"


def load_study():
    spec = importlib.util.spec_from_file_location("study", STUDY / "local" / "study.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["study"] = module
    spec.loader.exec_module(module)
    return module


study = load_study()


def sandbox(root: Path) -> Path:
    """A runnable copy of the study recipe: its files linked, its outputs local."""
    dst = root / "egs2" / "synthgrid" / "study1"
    dst.mkdir(parents=True)
    for entry in sorted(STUDY.iterdir()):  # path.sh finds the repository through its link
        if entry.name not in OUTPUTS:
            (dst / entry.name).symlink_to(entry)
    return dst


def run_table(recipe: Path, *args: str):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    return subprocess.run(
        ["local/table1.sh", "--micro", "--jobs", "2", "--local_data_opts", MICRO_DATA, *args],
        cwd=recipe, env=env, capture_output=True, text=True, timeout=1800)


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    recipe = sandbox(tmp_path_factory.mktemp("study"))
    first = run_table(recipe)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-5000:]
    records = {p.parent.name: p.stat().st_mtime_ns
               for p in (recipe / "exp").glob("*/study_cell.json")}
    second = run_table(recipe)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-5000:]
    return {"recipe": recipe, "first": first, "second": second, "records": records}


def test_two_cells_trained_decoded_and_scored(micro):
    recipe = micro["recipe"]
    assert sorted(micro["records"]) == ["vsr_d2_dense_s1", "vsr_d2_msrs_s1"]
    for tag in micro["records"]:
        record = json.loads((recipe / "exp" / tag / "study_cell.json").read_text())
        assert record["rc"] == 0 and "--max_epoch 1" in " ".join(record["command"])
        # CPU time of the recipe's processes (training alone takes seconds of it)
        assert 5.0 < record["cpu_s"] < 4 * record["wall_s"] + 60
        assert (recipe / "exp" / tag / "RESULTS.md").is_file()
    search = recipe / "exp" / "vsr_d2_msrs_s1" / "mask_search"
    assert (search / "mask.pth").is_file() and (search / "sparsity_report.json").is_file()


def test_results_json_reads_the_artifacts(micro):
    recipe = micro["recipe"]
    data = json.loads((recipe / "results" / "table1.json").read_text())
    assert data["micro"] is True and data["status"] == {"ok": 2, "cells": 2}
    blind = study.blind_wer(recipe)
    assert data["wer_blind"] == blind["wer_blind"] and 0 < blind["wer_blind"] <= 100
    assert blind["n_test_utts"] == 4 and len(blind["sentence"].split()) == 6
    cells = {c["tag"]: c for c in data["cells"]}
    for tag, cell in cells.items():
        scored = json.loads(next((recipe / "exp" / tag).glob(
            "decode_*/test/score/result.json")).read_text())
        assert cell["wer"] == pytest.approx(scored["wer"])
        assert cell["n_params"] > 10_000 and cell["train_epochs"] == 1
        assert cell["grad"]["train"]["first"] > 0  # grad_norm_enc0_ffn from train.log
    msrs = cells["vsr_d2_msrs_s1"]
    report = json.loads((recipe / "exp" / "vsr_d2_msrs_s1" / "mask_search" /
                         "sparsity_report.json").read_text())
    assert msrs["search"]["history"] == report["search"]["sparsity_history"]
    assert msrs["search"]["epochs"] == 1 and msrs["search"]["stop_reason"] == "max_epoch"
    assert cells["vsr_d2_dense_s1"].get("search") is None
    claims = [v["claim"] for v in data["verdicts"]]
    assert any("Dense VSR from random initialisation fails" in c for c in claims)
    assert {v["verdict"] for v in data["verdicts"]} <= {
        study.REPRODUCED, study.NOT_REPRODUCED, study.INCONCLUSIVE, study.NOT_TESTED}


def test_figure_and_study_md(micro):
    recipe = micro["recipe"]
    png = recipe / "figures" / "fig1_grad_norm.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = (recipe / "STUDY.md").read_text()
    assert "MICRO (a test run" in text and "Not (yet) the full study" in text
    assert "**Depth 2** (encoder 2 blocks, decoder 1)" in text
    assert "| Dense | Random |" in text and "| MSRS → sparse | Random |" in text
    assert text.count("Not run yet.") == len(study.TABLES) - 1
    assert "figures/fig1_grad_norm.png" in text
    assert re.search(r"CPU time \d+ min = \d+ min on 2 idle cores", text)


def test_second_run_redoes_no_cell(micro):
    recipe = micro["recipe"]
    after = {p.parent.name: p.stat().st_mtime_ns for p in (recipe / "exp").glob("*/study_cell.json")}
    assert after == micro["records"]
    assert "cell vsr_d2_dense_s1: started" not in micro["second"].stderr


# ------------------------------------------------------------ verdict rules
def test_trains_against_the_blind_reference():
    assert study.trains(71.6, 81.67) and not study.trains(71.7, 81.67)
    assert study.trainable_mark([50.0, 60.0], 81.67) == "✓"
    assert study.trainable_mark([95.0, 100.0], 81.67) == "✗"
    assert study.trainable_mark([50.0, 95.0], 81.67) == "1/2"


def test_verdict_rules():
    assert study.verdict_all([True, True]) == study.REPRODUCED
    assert study.verdict_all([False, False]) == study.NOT_REPRODUCED
    assert study.verdict_all([True, False]) == study.INCONCLUSIVE
    assert study.verdict_all([]) == study.NOT_TESTED
    # "A lower than B": separated ranges / mean not lower / overlap
    assert study.verdict_lower([10, 12], [13, 15]) == study.REPRODUCED
    assert study.verdict_lower([14, 16], [13, 15]) == study.NOT_REPRODUCED
    assert study.verdict_lower([10, 14], [12, 16]) == study.INCONCLUSIVE
    # parity: within max(1 point, the seed ranges)
    assert study.verdict_parity([20.5, 21.0], [20.0, 20.4]) == study.REPRODUCED
    assert study.verdict_parity([25.0, 26.0], [20.0, 20.4]) == study.NOT_REPRODUCED
    assert study.verdict_parity([20.0, 30.0], [18.0, 19.0]) == study.REPRODUCED  # τ = 10
    # (with two seeds overlapping ranges are always within τ; three seeds can be in between)
    assert study.verdict_parity([24.0, 30.0, 30.0], [20.0, 20.0, 25.0]) == study.INCONCLUSIVE
    # monotone effects (λ): strictly increasing means / a drop beyond the spread
    assert study.verdict_increasing([1, 2, 3], [[0.1, 0.1], [0.2, 0.3], [0.5, 0.4]]) == \
        study.REPRODUCED
    assert study.verdict_increasing([1, 2, 3], [[0.1], [0.5], [0.2]]) == study.NOT_REPRODUCED
    assert study.verdict_increasing([1, 2], [[0.2, 0.4], [0.25, 0.3]]) == study.INCONCLUSIVE
    assert study.combine([study.REPRODUCED, study.INCONCLUSIVE]) == study.INCONCLUSIVE
    assert study.combine([study.REPRODUCED, study.NOT_REPRODUCED]) == study.NOT_REPRODUCED
    assert study.slope([0, 0.5], [0.2, 0.4]) == pytest.approx(0.4)


def test_table1_claims_when_dense_never_fails():
    """With no depth where dense fails, the 'trains where dense fails' claims are
    not reproduced (premise absent) and the report says so."""
    rows = []
    for row, wer in (("Dense", 40.0), ("LayerScale", 42.0), ("MSRS → dense", 41.0),
                     ("MSRS → sparse", 43.0), ("MSRS + LayerScale", 44.0),
                     ("Dense with MSRS masks", 45.0)):
        for seed in (1, 2):
            rows.append({"tag": f"{row}{seed}", "row": row, "seed": seed, "depth": 2,
                         "theta0": "Random", "status": "ok", "wer": wer + seed,
                         "n_nonzero": 1000, "sparsity_all": 0.0, "train_epochs": 8,
                         "grad": {"train": {"g": 0.1, "first": 1.0, "ratio": 0.1},
                                  "search": {"g": 0.2, "first": 1.0, "ratio": 0.2}},
                         "grad_series": {}})
    lines, verdicts = study.report_table1(rows, 81.67, Path("/nonexistent"))
    by = {v["claim"]: v for v in verdicts}
    dense = by["Dense VSR from random initialisation fails to train (Table 1)"]
    assert dense["verdict"] == study.NOT_REPRODUCED and "dense trains at every depth" in \
        dense["evidence"]
    assert by["LayerScale trains where dense fails"]["verdict"] == study.NOT_REPRODUCED
    assert "premise absent" in by["LayerScale trains where dense fails"]["evidence"]
    assert any("| Dense | Random | 1 k | 0.0 [0.0–0.0] | 8 | 41.5 [41.0–42.0] | ✓ |" in line
               for line in lines)


def _row(tag, row, seed, wer, depth=12, theta0="Random", **extra):
    return {"tag": tag, "row": row, "seed": seed, "depth": depth, "theta0": theta0,
            "status": "ok", "wer": wer, "n_nonzero": 1000, "sparsity_all": 0.4,
            "train_epochs": 6, **extra}


def _write_report(path: Path, frontend: float, encoder: float, decoder: float) -> None:
    """A sparsity_report.json (the library's format) with the given group sparsities."""
    import torch

    from espnet_msrs.sparsity.report import sparsity_report

    def weight(sparsity):
        w = torch.ones(10, 10)
        w.view(-1)[: int(round(100 * sparsity))] = 0.0
        return w

    params = {"frontend.video.conv.weight": weight(frontend),
              "encoder.encoders.0.feed_forward.w_1.weight": weight(encoder),
              "encoder.encoders.1.feed_forward.w_1.weight": weight(encoder),
              "decoder.decoders.0.feed_forward.w_1.weight": weight(decoder)}
    report = sparsity_report(params, prunable=list(params))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report))


def test_table4_report_and_fig3(tmp_path):
    rows = []
    for seed in (1, 2):
        rows.append(_row(f"vsr_d12_dense_s{seed}", "Dense", seed, 80.0 + seed))
        rows.append(_row(f"vsr_d12_msrs_s{seed}", "MSRS → sparse", seed, 50.0 + seed))
        rows.append(_row(f"vsr_d12_msrsgm_s{seed}", "Dense with MSRS masks", seed, 60.0 + seed))
        for name in ("SET", "RigL", "GMP", "CHASE"):
            rows.append(_row(f"vsr_d12_{name.lower()}_s{seed}", name, seed, 81.0))
            rows.append(_row(f"vsr_d12_fe_{name.lower()}_s{seed}", name, seed, 45.0,
                             theta0="Frontend"))
        rows.append(_row(f"vsr_d12_fe_msrs_s{seed}", "MSRS", seed, 44.0, theta0="Frontend"))
        rows.append(_row(f"vsr_d2_dense_s{seed}", "Dense", seed, 40.0, depth=2))
        _write_report(tmp_path / "exp" / f"vsr_d12_msrs_s{seed}" / "mask_search" /
                      "sparsity_report.json", 0.5, 0.4, 0.1)
        _write_report(tmp_path / "exp" / f"vsr_d12_set_s{seed}" / "train" /
                      "sparsity_report.json", 0.6, 0.3, 0.3)
    lines, verdicts = study.report_table4(rows, 81.67, tmp_path / "figures", tmp_path)
    by = {v["claim"]: v["verdict"] for v in verdicts}
    assert by["From random initialisation SET, RigL, GMP and CHASE fail"] == study.REPRODUCED
    assert by["From random initialisation MSRS trains"] == study.REPRODUCED
    assert by["From a pretrained frontend every sparse method trains"] == study.REPRODUCED
    assert by["MSRS prunes the frontend and the encoder more than the decoder (Fig. 3)"] == \
        study.REPRODUCED
    assert (tmp_path / "figures" / "fig3_sparsity_distribution.png").is_file()
    assert "| MSRS s1 | 50.0 | 40.0 | 10.0 |" in lines
    assert "| SET (ERK) s2 | 60.0 | 30.0 | 30.0 |" in lines
    assert any(line.startswith("| MSRS | Frontend |") for line in lines)
    assert any(line.startswith("| Dense with MSRS masks | Random |") for line in lines)


def test_fig2_report_orders_lambda(tmp_path):
    rows = []
    for i, lam in enumerate((3e-9, 3e-7, 3e-5)):
        for seed in (1, 2):
            hist = [0.03, 0.05 + 0.2 * i, 0.1 + 0.3 * i]
            rows.append(_row(f"lam{lam}_s{seed}", f"λ = {lam}", seed, [40, 35, 70][i] + seed,
                             search={"history": hist, "sparsity_prunable": hist[-1],
                                     "mask_penalty": lam, "epochs": 2}))
    lines, verdicts = study.report_fig2(rows, 81.67, tmp_path)
    by = {v["claim"]: v for v in verdicts}
    assert by["Larger λ prunes faster and further (Fig. 2)"]["verdict"] == study.REPRODUCED
    too_large = by["Too large a λ costs accuracy (Fig. 2)"]
    assert too_large["verdict"] == study.REPRODUCED and "best λ = 3e-07" in too_large["evidence"]
    assert (tmp_path / "fig2_lambda.png").is_file()
    assert "| 3e-05 | 2 + 6 | 45.0 [45.0–45.0] | 70.0 [70.0–70.0] |" in " ".join(lines)


def test_lrsms_report_from_numbers_and_benchmark(tmp_path):
    wer = {"full": 10.0, "a025": 14.0, "a012": 16.0, "mhsa012": 10.2, "ffn025": 12.0,
           "linear": 10.5, "ffn050": 11.0}
    rows = []
    for seed in (1, 2):
        for key, value in wer.items():
            rows.append(_row(f"asr_lr_{key}_s{seed}", study.LR_ROWS[key][0], seed,
                             value + 0.1 * seed, depth=6, wer_sets={"test": value}))
        for key in ("ffn025", "ffn050"):
            rows.append(_row(f"asr_lr_{key}_kaiming_s{seed}",
                             study.LR_ROWS[key][0] + " (Kaiming)", seed, 20.0 + seed, depth=6,
                             wer_sets={"test": 20.0}))
    logs = tmp_path / "exp" / "study_logs"
    limits = {v: {"step_ratio": 0.8 if v != "dense" else 1.0,
                  "memory_ratio": 0.9 if v != "dense" else 1.0}
              for v in study.LR_BENCH_VARIANT.values()}
    for which in ("study", "paper"):
        study._write_json(logs / f"bench_lrsms_asr_{which}.json", {"against_limit": limits})
    lines, verdicts = study.report_lrsms("lrsms_asr", rows, 81.67, tmp_path / "figures", tmp_path)
    by = {v["claim"]: v["verdict"] for v in verdicts}
    assert by["Linear layer-wise rank keeps full-rank WER (ASR)"] == study.REPRODUCED
    assert by["Linear rank has lower WER than uniform MHSA & FFN, α = 0.25 (ASR)"] == \
        study.REPRODUCED
    assert by["Low-rank MHSA only (α = 0.12) keeps full-rank WER"] == study.REPRODUCED
    assert by["Low-rank FFN only (α = 0.25) costs WER"] == study.REPRODUCED
    assert by["SVD initialisation beats Kaiming (Fig. 4)"] == study.REPRODUCED
    assert by["Linear rank trains faster and with less memory than full rank (paper width)"] \
        == study.REPRODUCED
    table = "\n".join(lines)
    assert "| Linear MHSA [0.1, 0.2], FFN [0.2, 0.4] | 1 k | – | 0.80 | 0.90 | 0.80 | 0.90 |" \
        in table
    assert "| FFN only, α = 0.25 (Kaiming) | 1 k | – | – | – | – | – |" in table


def test_lrsms_benchmark_runs_every_variant(tmp_path):
    """The LR-SMS tables' side-by-side benchmark command (micro: one round)."""
    knobs = study.Knobs(recipe_dir=tmp_path, micro=True)
    commands = study.bench_commands("lrsms_asr", knobs)
    assert list(commands) == ["study"]
    study.run_benchmarks("lrsms_asr", knobs)
    data = json.loads((tmp_path / "exp" / "study_logs" / "bench_lrsms_asr_study.json").read_text())
    limits = data["against_limit"]
    for variant in study.LR_BENCH_VARIANT.values():
        assert limits[variant]["step_ratio"] > 0, variant
    assert limits["dense"]["param_ratio"] == 1.0
    assert limits["lr_all_a012"]["param_ratio"] < limits["lr_all_a025"]["param_ratio"] < 1.0
    # a second call finds it done (same command) and does not rerun it
    stamp = tmp_path / "exp" / "study_logs" / "bench_lrsms_asr_study.json"
    before = stamp.stat().st_mtime_ns
    study.run_benchmarks("lrsms_asr", knobs)
    assert stamp.stat().st_mtime_ns == before
