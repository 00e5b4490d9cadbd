"""Tests of the data-pipeline benchmark (bench/data_pipeline.py).

No speed is asserted: only that every measure runs the real pipeline on a
tiny corpus, counts the right frames, that the two formats hold the same
pixels, and that the ratios and the paper estimate are computed from the
measured figures.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from bench import data_pipeline
from espnet_msrs.utils.data_dir import read_kv
from espnet_msrs.video.io import read_video
from tests.helpers.tiny_corpus import make_tiny_corpus

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    corpus = make_tiny_corpus(root, sets={"train": 4})
    work = root / "work"
    out = root / "data_pipeline.json"
    returned = data_pipeline.main([
        "--data_dir", str(corpus["train"]), "--work_dir", str(work),
        "--num_utts", "3", "--workers", "2", "--batch_size", "2",
        "--repeats", "2", "--warmup", "0", "--crop_size", "64", "--out", str(out),
        "--paper_configs", str(REPO / "conf" / "tuning" / "train_avsr_tiny.yaml"),
        "--paper_frames", "10", "--paper_tokens", "3",
    ])
    written = json.loads(out.read_text())
    assert written["measures"].keys() == returned["measures"].keys()
    return {"json": written, "work": work, "corpus": corpus}


def test_both_formats_hold_the_same_pixels(result):
    work = result["work"]
    mp4 = read_kv(work / "mp4" / "video.scp")
    npy = read_kv(work / "npy" / "video.scp")
    assert list(mp4) == list(npy) and len(mp4) == 3
    for key in mp4:
        assert mp4[key].endswith(".mp4") and npy[key].endswith(".npy")
        from_mp4 = read_video(mp4[key])
        np.testing.assert_array_equal(from_mp4, np.load(npy[key]))
        # the "before" reader (swscale) decodes the same pixels
        np.testing.assert_array_equal(data_pipeline.decode_swscale(mp4[key]), from_mp4)
        assert data_pipeline.decode_only(mp4[key]) == len(from_mp4)


def test_every_measure_counts_every_frame(result):
    res = result["json"]
    frames = res["data"]["frames"]
    assert res["data"]["utts"] == 3 and res["data"]["seconds"] == frames / 25
    # iterator: npy and mp4 with 1 and 2 workers, swscale with 1
    levels = {"decode": 5, "dataset": 3, "inference": 2, "iterator": 5}
    for level, count in levels.items():
        assert sum(m["level"] == level for m in res["measures"].values()) == count
    for name, m in res["measures"].items():
        # the packed av stream has one row per video frame
        assert m["frames"] == frames, name
        assert m["cpu"]["n"] == m["wall"]["n"] == 2
        assert m["fps_per_core"] == pytest.approx(frames / m["cpu"]["median"])
        assert m["realtime_per_core"] == pytest.approx(m["fps_per_core"] / 25)
        assert m["fps_wall"] == pytest.approx(frames / m["wall"]["median"])
    # DataLoader workers' CPU time is counted (the main process alone does little)
    many = res["measures"]["mp4 iterator, 2 workers"]
    assert many["cpu"]["median"] > 0


def test_ratios_are_per_round_ratios_of_the_measures(result):
    res = result["json"]
    r = res["ratios"]["mp4 vs npy, decode"]
    mp4, npy = res["measures"]["mp4 read_video"], res["measures"]["npy read_video"]
    per_round = sorted(n / m for m, n in zip(mp4["cpu"]["samples"], npy["cpu"]["samples"]))
    assert r["median"] == pytest.approx(sum(per_round) / 2)  # median of two
    assert r["p25"] <= r["median"] <= r["p75"]
    assert "2 workers vs 1, mp4 iterator, wall" in res["ratios"]


def test_paper_estimate_uses_the_flop_counter_and_the_measured_rate(result):
    est = result["json"]["paper_estimate"]
    (row,) = est["configs"]
    assert row["modality"] == "av" and row["frames"] == 10
    assert row["forward_flops_per_frame"] > 0
    assert row["train_flops_per_frame"] == pytest.approx(3 * row["forward_flops_per_frame"])
    assert row["gpu_fps"] == pytest.approx(100e12 / row["train_flops_per_frame"])
    measured = result["json"]["measures"]["mp4 iterator, 1 worker"]["fps_per_core"]
    assert row["cores_per_gpu"]["mp4"] == pytest.approx(row["gpu_fps"] / measured)


def test_missing_data_file_is_named(tmp_path):
    (tmp_path / "video.scp").write_text("u1 nowhere/u1.mp4\n")
    with pytest.raises(ValueError, match="no wav.scp"):
        data_pipeline.main(["--data_dir", str(tmp_path), "--out", str(tmp_path / "o.json")])
    (tmp_path / "wav.scp").write_text("u1 /nowhere/u1.wav\n")
    (tmp_path / "text").write_text("u1 A\n")
    with pytest.raises(ValueError, match="nowhere/u1.mp4 not found"):
        data_pipeline.main(["--data_dir", str(tmp_path), "--out", str(tmp_path / "o.json")])
    (tmp_path / "video.scp").write_text(f"u1 {tmp_path / 'u1.mp4'}\n")
    (tmp_path / "u1.mp4").write_bytes(b"not a video")
    with pytest.raises(ValueError, match=f"uid=u1 path={tmp_path / 'u1.mp4'}"):
        data_pipeline.main(["--data_dir", str(tmp_path), "--out", str(tmp_path / "o.json")])
