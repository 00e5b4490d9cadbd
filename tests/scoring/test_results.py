"""Tests of score_dir (result.txt / result.json), RESULTS.md and the score CLI."""

import json

import pytest

from espnet_msrs.bin.score import main as score_main
from espnet_msrs.scoring import results as results_mod
from espnet_msrs.scoring import sclite as sclite_mod
from espnet_msrs.scoring.results import (
    SNR_COLUMNS,
    load_result,
    make_results_md,
    score_dir,
)


@pytest.fixture
def texts(tmp_path):
    ref = tmp_path / "data" / "text"
    ref.parent.mkdir()
    ref.write_text("u1 set blue at a one now\nu2 lay red by b two\nu3 bin green\n")
    hyp = tmp_path / "hyp_text"
    hyp.write_text("u1 set blue at a one now\nu2 lay rod by two please\n")
    return ref, hyp


def test_score_dir_jiwer(texts, tmp_path):
    ref, hyp = texts
    out = tmp_path / "score"
    result = score_dir(ref, hyp, out, scorer="jiwer")
    # words: 6 + 5 + 2 = 13; u2 with unit costs: 3 sub (sclite's 3/3/4 costs
    # split the same 3 errors into 1 sub, 1 del, 1 ins); u3 missing: 2 del
    assert result["scorer"] == "jiwer" and result["sclite"] is None
    assert result["n_utts"] == 3
    assert result["word"]["n_ref"] == 13
    assert (result["word"]["substitutions"], result["word"]["deletions"],
            result["word"]["insertions"]) == (3, 2, 0)
    assert result["wer"] == pytest.approx(100 * 5 / 13)
    assert result["missing_hyps"] == ["u3"]
    assert load_result(out) == result == json.loads((out / "result.json").read_text())
    txt = (out / "result.txt").read_text()
    assert "missing hypotheses (scored as deletions): 1: u3" in txt
    sum_avg = [line for line in txt.splitlines() if line.startswith("| Sum/Avg")]
    assert len(sum_avg) == 2  # WER and CER blocks, grep-able like sclite's
    assert sum_avg[0].split("|")[3].split()[4] == f"{100 * 5 / 13:.1f}"
    assert "REF:  lay RED by B   TWO   " in txt  # errors upper-cased
    assert "HYP:  lay ROD by TWO PLEASE" in txt
    assert "scorer: jiwer" in txt and "Word alignments (jiwer)" in txt
    assert "id: u3  (no hypothesis)" in txt


def test_score_dir_scorer_choice(texts, tmp_path, monkeypatch):
    ref, hyp = texts
    with pytest.raises(ValueError, match="scorer='python'"):
        score_dir(ref, hyp, tmp_path / "x", scorer="python")
    monkeypatch.setattr(sclite_mod, "find_sclite", lambda: None)
    with pytest.raises(FileNotFoundError, match="sclite is required"):
        score_dir(ref, hyp, tmp_path / "x", scorer="sclite")
    result = score_dir(ref, hyp, tmp_path / "auto", scorer="auto")
    assert result["scorer"] == "jiwer" and result["sclite"] is None


def test_score_dir_empty_reference(tmp_path):
    (tmp_path / "ref").write_text("u1 a\nu2\n")
    (tmp_path / "hyp").write_text("u1 a\nu2 b\n")
    with pytest.raises(ValueError, match="'u2' has an empty reference"):
        score_dir(tmp_path / "ref", tmp_path / "hyp", tmp_path / "out", scorer="jiwer")


def test_cli(texts, tmp_path):
    ref, hyp = texts
    out = tmp_path / "cli"
    score_main(["--ref", str(ref), "--hyp", str(hyp), "--out_dir", str(out),
                "--scorer", "jiwer"])
    result = json.loads((out / "result.json").read_text())
    assert result["wer"] == pytest.approx(100 * 5 / 13)
    assert (out / "result.txt").is_file()


def test_results_md_layout(tmp_path):
    path = tmp_path / "exp" / "RESULTS.md"
    text = make_results_md(
        path,
        env={"date": "2025-01-02", "git_sha": "abc1234", "espnet": "202511",
             "torch": "2.11.0", "host": "ci"},
        snr_rows=[
            {"name": "Dense", "wer": {-7.5: 2.8, "-2.5": 1.5, 2.5: 1.1, 7.5: 1.0,
                                      12.5: 0.9, "clean": 0.8}},
            {"name": "Sparse MSRS (39.7%)", "wer": {"clean": 1.04, 12.5: 1.0}},
        ],
        test_rows=[{"model": "Dense", "test_set": "test_clean", "wer": 0.8,
                    "cer": 0.35, "n_utts": 30, "word": {"n_ref": 180},
                    "char": {"n_ref": 900}, "scorer": "sclite"}],
        model_rows=[
            {"name": "Dense", "n_params": 268_000_000, "sparsity_all": 0.0,
             "sparsity_prunable": 0.0},
            {"name": "Sparse MSRS (39.7%)", "n_params": 268_000_000,
             "sparsity_all": 0.397, "sparsity_prunable": 0.42},
            {"name": "LR-SMS", "n_params": 1234,
             "ranks": {"mhsa": [64, 128], "ffn": [96]}},
        ],
    )
    assert path.read_text() == text
    lines = text.splitlines()
    assert "- date: 2025-01-02, git_sha: abc1234, espnet: 202511, torch: 2.11.0, host: ci" in lines
    header = "| Model | #Params | -7.5 dB | -2.5 dB | 2.5 dB | 7.5 dB | 12.5 dB | Clean |"
    i = lines.index(header)
    assert lines[i + 1] == "|:---|---:|---:|---:|---:|---:|---:|---:|"
    assert lines[i + 2] == "| Dense | 268.0 M | 2.8 | 1.5 | 1.1 | 1.0 | 0.9 | 0.8 |"
    assert lines[i + 3] == "| Sparse MSRS (39.7%) | 268.0 M | – | – | – | – | 1.0 | 1.0 |"
    assert "| Dense | test_clean | 30 | 180 | 0.8 | 900 | 0.3 | sclite |" in lines
    assert ("| Sparse MSRS (39.7%) | 268.0 M | 161.6 M | 39.7 % | 42.0 % | – |"
            in lines)
    assert "| LR-SMS | 1.2 K | 1.2 K | – | – | mhsa: 64–128 (mean 96); ffn: 96 |" in lines
    assert len(SNR_COLUMNS) == 6


def test_results_md_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="SNR column '5' is not allowed"):
        make_results_md(
            tmp_path / "R.md", env={}, snr_rows=[{"name": "m", "wer": {"5": 1.0}}]
        )
    with pytest.raises(ValueError, match="model 'm': sparsity_all=39.7"):
        make_results_md(
            tmp_path / "R.md",
            env={},
            model_rows=[{"name": "m", "n_params": 10, "sparsity_all": 39.7}],
        )
    text = make_results_md(tmp_path / "R.md", env={})
    assert "git_sha: –" in text and "date: " in text
    assert results_mod.MISSING == "–"
