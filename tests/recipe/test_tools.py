"""Recipe tools: split/merge, resampling, length filter, noisy test sets,
checkpoint averaging and the RESULTS.md facts."""

import math
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from espnet_msrs.bin.average_checkpoints import average_checkpoints
from espnet_msrs.bin.filter_data import filter_data_dir
from espnet_msrs.bin.make_noisy_sets import make_noisy_sets, utterance_rng
from espnet_msrs.bin.make_results import model_facts, split_set_name
from espnet_msrs.bin.resample_audio import main as resample_main
from espnet_msrs.bin.split_scp import merge_files, split_file, split_lines
from espnet_msrs.utils.data_dir import read_kv

SR = 16000


# ------------------------------------------------------------- split / merge
def test_split_lines_balanced_and_ordered():
    parts = split_lines([f"u{i}" for i in range(10)], 4)
    assert [len(p) for p in parts] == [3, 3, 2, 2]
    assert sum(parts, []) == [f"u{i}" for i in range(10)]
    with pytest.raises(ValueError, match="non-empty parts"):
        split_lines(["a"], 2)


def test_split_then_merge_round_trip(tmp_path):
    text = tmp_path / "text"
    text.write_text("".join(f"u{i:02d} WORD {i}\n" for i in range(7)))
    keys = split_file(str(text), str(tmp_path / "keys.JOB.scp"), 3, keys_only=True)
    assert [p.read_text().split() for p in keys] == [
        ["u00", "u01", "u02"], ["u03", "u04"], ["u05", "u06"]]
    # decode jobs write their parts (here: out of order); merge sorts by key
    parts = []
    for i, p in enumerate(keys, 1):
        out = tmp_path / f"hyp.{i}"
        out.write_text("".join(f"{k} HYP {k}\n" for k in reversed(p.read_text().split())))
        parts.append(str(out))
    report = merge_files(parts[::-1], str(tmp_path / "merged"), expect_keys=str(text))
    merged = (tmp_path / "merged").read_text().splitlines()
    assert merged == [f"u{i:02d} HYP u{i:02d}" for i in range(7)]
    assert report == {"missing": [], "unexpected": []}
    # a lost utterance is reported, a duplicate is an error
    report = merge_files(parts[:2], str(tmp_path / "m2"), expect_keys=str(text))
    assert report["missing"] == ["u05", "u06"]
    with pytest.raises(ValueError, match="appears twice"):
        merge_files([parts[0], parts[0]], str(tmp_path / "m3"))
    with pytest.raises(ValueError, match="does not exist"):
        merge_files([str(tmp_path / "nope")], str(tmp_path / "m4"))


# ------------------------------------------------------------------ resample
def test_resample_to_16k(tmp_path):
    rate = 22050
    t = np.arange(int(1.5 * rate)) / rate
    sf.write(tmp_path / "a.wav", 0.5 * np.sin(2 * np.pi * 440 * t), rate, subtype="PCM_16")
    (tmp_path / "wav.scp").write_text(f"a {tmp_path / 'a.wav'}\nb {tmp_path / 'missing.wav'}\n")
    args = ["--wav_scp", str(tmp_path / "wav.scp"), "--out_dir", str(tmp_path / "o"),
            "--out_scp", str(tmp_path / "o/wav.scp")]
    assert resample_main(args) == 1  # the missing file fails the run ...
    assert resample_main(args + ["--allow_failures", "true"]) == 0  # ... unless allowed
    assert read_kv(tmp_path / "o/wav.scp") == {"a": str(tmp_path / "o/a.wav")}
    assert "missing.wav" in (tmp_path / "o/failed.txt").read_text()
    y, sr = sf.read(tmp_path / "o/a.wav")
    assert sr == SR and len(y) == 24000
    spectrum = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spectrum) * SR / len(y) - 440) < 2  # same tone


# ------------------------------------------------------------- length filter
def test_filter_data_lists_removed(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    durs = {"a": 0.2, "b": 1.0, "c": 30.0}
    (src / "utt2dur").write_text("".join(f"{u} {d}\n" for u, d in durs.items()))
    (src / "text").write_text("a A\nb B\nc C\n")
    (src / "wav.scp").write_text("a a.wav\nb b.wav\nc c.wav\n")
    (src / "utt2spk").write_text("a s1\nb s1\nc s2\n")
    removed = filter_data_dir(str(src), str(tmp_path / "dst"), 0.3, 20.0)
    assert sorted(removed) == ["a", "c"]
    assert "too short" in removed["a"] and "too long" in removed["c"]
    dst = tmp_path / "dst"
    assert (dst / "text").read_text() == "b B\n"
    assert (dst / "spk2utt").read_text() == "s1 b\n"
    assert len((dst / "removed.txt").read_text().splitlines()) == 2


# ---------------------------------------------------------------- noisy sets
def _signal(n, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SR
    return 0.3 * np.sin(2 * np.pi * rng.uniform(100, 300) * t) + 0.01 * rng.standard_normal(n)


def test_noisy_sets_hit_the_snr_and_are_deterministic(tmp_path):
    data = tmp_path / "test"
    data.mkdir()
    lines = []
    for i, n in enumerate((12000, 20000)):
        sf.write(tmp_path / f"u{i}.wav", _signal(n, i).astype(np.float32), SR, subtype="FLOAT")
        lines.append(f"u{i} {tmp_path / f'u{i}.wav'}")
    (data / "wav.scp").write_text("\n".join(lines) + "\n")
    (data / "text").write_text("u0 A\nu1 B\n")
    (data / "video.scp").write_text("u0 v0.mp4\nu1 v1.mp4\n")
    (data / "utt2spk").write_text("u0 s\nu1 s\n")
    noise = np.random.default_rng(9).standard_normal(16000)
    sf.write(tmp_path / "noise.wav", noise.astype(np.float32), SR, subtype="FLOAT")
    snrs = [-7.5, -2.5, 2.5, 7.5, 12.5]
    dirs = make_noisy_sets(str(data), str(tmp_path / "noise.wav"), snrs,
                           str(tmp_path / "test_snr"), str(tmp_path / "wav/test_snr"), seed=0)
    assert [d.name for d in dirs] == [f"test_snr{s:g}" for s in snrs]
    noise_parts = {}
    for snr, d in zip(snrs, dirs):
        assert (d / "text").read_text() == "u0 A\nu1 B\n"
        assert (d / "video.scp").read_text() == "u0 v0.mp4\nu1 v1.mp4\n"  # video unchanged
        for uid, path in read_kv(d / "wav.scp").items():
            clean, _ = sf.read(tmp_path / f"{uid}.wav")
            mixed, sr = sf.read(path)
            assert sr == SR and len(mixed) == len(clean)
            added = mixed - clean
            measured = 10 * math.log10(np.mean(clean**2) / np.mean(added**2))
            assert abs(measured - snr) < 1e-3, (uid, snr, measured)
            noise_parts.setdefault(uid, []).append(added / np.sqrt(np.mean(added**2)))
    # the same noise segment at every SNR (only the level differs)
    for parts in noise_parts.values():
        for p in parts[1:]:
            np.testing.assert_allclose(p, parts[0], atol=1e-4)
    # a second run (fresh directories) reproduces the mixtures exactly
    again = make_noisy_sets(str(data), str(tmp_path / "noise.wav"), [2.5],
                            str(tmp_path / "again_snr"), str(tmp_path / "wav2/again_snr"), seed=0)
    a, _ = sf.read(read_kv(again[0] / "wav.scp")["u1"])
    b, _ = sf.read(read_kv(dirs[2] / "wav.scp")["u1"])
    np.testing.assert_array_equal(a, b)
    assert utterance_rng(0, "u1").integers(1 << 30) == utterance_rng(0, "u1").integers(1 << 30)


# ----------------------------------------------------------------- averaging
def test_average_checkpoints_uses_the_reporter_ranking(tmp_path):
    from espnet2.train.reporter import Reporter

    exp = tmp_path / "train"
    exp.mkdir()
    reporter = Reporter()
    accs = {1: 0.5, 2: 0.9, 3: 0.7, 4: 0.8}
    for epoch, acc in accs.items():
        reporter.set_epoch(epoch)
        with reporter.observe("valid") as sub:
            sub.register({"acc": acc})
            sub.next()
        if epoch != 1:  # ESPnet deleted the worst epoch's file
            torch.save({"w": torch.full((2,), float(epoch)),
                        "bn.num_batches_tracked": torch.tensor(epoch)},
                       exp / f"{epoch}epoch.pth")
    torch.save({"reporter": reporter.state_dict()}, exp / "checkpoint.pth")
    (exp / "config.yaml").write_text("keep_nbest_models: 3\n")
    out = average_checkpoints(str(exp), ("valid", "acc", "max"), None,
                              str(exp / "valid.acc.ave.pth"))
    assert out.name == "valid.acc.ave_3best.pth"
    avg = torch.load(exp / "valid.acc.ave.pth")  # the link follows the average
    assert torch.allclose(avg["w"], torch.full((2,), (2 + 4 + 3) / 3))
    assert int(avg["bn.num_batches_tracked"]) == 9  # ints are accumulated (ESPnet)
    assert os.path.islink(exp / "valid.acc.ave.pth")
    # asking for more epochs than kept averages what is on disk
    out = average_checkpoints(str(exp), ("valid", "acc", "max"), 4)
    assert out.name == "valid.acc.ave_3best.pth"
    with pytest.raises(ValueError, match="not reported"):
        average_checkpoints(str(exp), ("valid", "wer", "min"), 1)


# ------------------------------------------------------------------- results
def test_model_facts_counts_zeros_masks_and_ranks(tmp_path):
    from espnet_msrs.sparsity.mask_file import save_masks

    w = torch.ones(4, 5)
    w[:2] = 0.0  # 10 zeros (pruned by the mask)
    state = {
        "encoder.encoders.0.feed_forward.w_1.weight": w,
        "encoder.encoders.0.feed_forward.w_1.bias": torch.ones(4),
        "encoder.encoders.0.self_attn.linear_q.lowrank_v.weight": torch.ones(3, 8),
        "encoder.encoders.0.self_attn.linear_q.lowrank_u.weight": torch.ones(8, 3),
        "encoder.encoders.1.feed_forward.w_1.lowrank_v.weight": torch.ones(2, 8),
        "frontend.bn.running_mean": torch.zeros(7),  # buffers are not parameters
        "frontend.bn.num_batches_tracked": torch.tensor(3),
    }
    torch.save(state, tmp_path / "m.pth")
    mask = {"encoder.encoders.0.feed_forward.w_1.weight": w != 0}
    save_masks(mask, tmp_path / "mask.pth")
    facts = model_facts(tmp_path / "m.pth", tmp_path / "mask.pth")
    assert facts["n_params"] == 20 + 4 + 24 + 24 + 16
    assert facts["n_nonzero"] == facts["n_params"] - 10
    assert facts["sparsity_prunable"] == pytest.approx(0.5)
    assert facts["sparsity_all"] == pytest.approx(10 / 88)
    assert facts["ranks"] == {"mhsa": [3], "ffn": [2]}
    assert model_facts(tmp_path / "m.pth")["sparsity_prunable"] is None


def test_split_set_name():
    assert split_set_name("test_snr-7.5") == ("test", -7.5)
    assert split_set_name("test_snr12.5", ["test"]) == ("test", 12.5)
    assert split_set_name("test") == ("test", "clean")
    assert split_set_name("dev_snr5", ["test"]) == ("dev_snr5", "clean")


# ------------------------------------------------------------- packed model
def test_check_packed_model_refuses_escaping_members(tmp_path):
    import zipfile

    from espnet_msrs.bin.check_packed_model import check_packed_model

    bad = tmp_path / "model.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("meta.yaml", "files: {asr_model_file: m.pth}\nyaml_files: {}\n")
        zf.writestr("../../escaped.txt", "owned")
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match="escaped.txt"):
        check_packed_model(str(bad), str(tmp_path), "audio", cache_dir=str(cache))
    assert not (tmp_path / "escaped.txt").exists()
    assert not any(cache.rglob("*")) if cache.exists() else True
