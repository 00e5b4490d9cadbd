"""espnet_msrs.data_prep.noise (stage 6; bin/make_babble, bin/make_noisy_sets):
synthetic babble, a NOISEX-style recording at any rate, noisy test sets at
exact SNRs, outputs that follow their inputs, and the noise named."""

import json
import logging
import math
import os

import numpy as np
import pytest
import soundfile as sf

from espnet_msrs.bin.make_babble import main as babble_main
from espnet_msrs.data_prep.noise import (
    describe_noise,
    make_babble,
    make_noisy_sets,
    prepare_recording,
    utterance_rng,
)
from espnet_msrs.utils.data_dir import read_kv

SR = 16000


@pytest.fixture
def wav_scp(tmp_path):
    """Five utterances of 0.1..0.5 s at 16 kHz with different levels."""
    rng = np.random.default_rng(0)
    lines = []
    for i in range(5):
        path = tmp_path / f"u{i}.wav"
        sf.write(path, (i + 1) * 0.05 * rng.standard_normal(1600 * (i + 1)), SR)
        lines.append(f"u{i} {path}\n")
    scp = tmp_path / "wav.scp"
    scp.write_text("".join(lines))
    return scp


# ---------------------------------------------------------- synthetic babble
def test_babble_written_once_with_expected_length(tmp_path, wav_scp, caplog):
    out = tmp_path / "dump" / "babble.wav"
    make_babble(wav_scp, out, num_utts=5, seed=0)
    audio, rate = sf.read(out)
    assert rate == SR and audio.shape == (8000,)  # the longest utterance
    assert np.max(np.abs(audio)) == pytest.approx(0.9, abs=1e-3)
    assert sorted(os.listdir(out.parent)) == ["babble.wav", "babble.wav.json"]
    info = json.loads((out.parent / "babble.wav.json").read_text())
    assert info["request"]["kind"] == "synthetic" and info["num_utts"] == 5
    mtime = out.stat().st_mtime_ns
    with caplog.at_level(logging.INFO):
        make_babble(wav_scp, out, num_utts=5, seed=0)  # the same request: kept
    assert out.stat().st_mtime_ns == mtime and "exists, keeping it" in caplog.text
    make_babble(wav_scp, out, num_utts=2, seed=1)  # another request: remade
    assert sf.info(out).frames != 8000 or out.stat().st_mtime_ns != mtime


def test_babble_sums_unit_rms_tiled_utterances(tmp_path, wav_scp):
    scp = tmp_path / "two.scp"
    scp.write_text("".join(wav_scp.read_text().splitlines(keepends=True)[:2]))
    audio, _ = sf.read(make_babble(scp, tmp_path / "b.wav", num_utts=2, seed=0))
    parts = []
    for path in read_kv(scp).values():
        x, _ = sf.read(path)
        parts.append(np.resize(x / np.sqrt(np.mean(x**2)), 3200))
    expected = parts[0] + parts[1]
    expected *= 0.9 / np.max(np.abs(expected))
    np.testing.assert_allclose(audio, expected, atol=2e-4)  # 16-bit PCM


def test_seed_chooses_the_utterances(tmp_path, wav_scp):
    a = sf.read(make_babble(wav_scp, tmp_path / "a.wav", num_utts=2, seed=0))[0]
    b = sf.read(make_babble(wav_scp, tmp_path / "b.wav", num_utts=2, seed=0))[0]
    c = [sf.read(make_babble(wav_scp, tmp_path / f"c{s}.wav", num_utts=2, seed=s))[0]
         for s in range(1, 6)]
    np.testing.assert_array_equal(a, b)
    assert any(x.shape != a.shape or not np.array_equal(x, a) for x in c)


def test_bad_inputs(tmp_path):
    other = tmp_path / "8k.wav"
    sf.write(other, np.ones(80) * 0.1, 8000)
    scp = tmp_path / "wav.scp"
    scp.write_text(f"u {other}\n")
    with pytest.raises(ValueError, match="8k.wav has sample rate 8000"):
        make_babble(scp, tmp_path / "x.wav", num_utts=1)
    scp.write_text("u sox a.wav -t wav - |\n")
    with pytest.raises(ValueError, match="piped commands are not supported"):
        make_babble(scp, tmp_path / "x.wav")
    assert not (tmp_path / "x.wav").exists()


# -------------------------------------------------------- a noise recording
@pytest.mark.parametrize("rate", [19980, 8000])
def test_a_recording_at_any_rate_becomes_16k(tmp_path, rate, capsys):
    t = np.arange(2 * rate) / rate
    src = tmp_path / "babble.wav"  # NOISEX-92's babble is 19.98 kHz
    sf.write(src, np.stack([0.4 * np.sin(2 * np.pi * 600 * t)] * 2, axis=1), rate)
    out = tmp_path / "noise" / "babble_train.wav"
    babble_main(["--recording", str(src), "--out", str(out)])
    y, sr = sf.read(out)
    assert sr == SR and len(y) == 2 * SR and y.ndim == 1
    assert abs(np.argmax(np.abs(np.fft.rfft(y))) * SR / len(y) - 600) < 1
    described = capsys.readouterr().out.strip()
    assert described == describe_noise(out)
    assert described == (f"recording {src.resolve()} (2.0 s, resampled from {rate} Hz; "
                         f"db.sh NOISEX_BABBLE)")
    mtime = out.stat().st_mtime_ns
    prepare_recording(src, out)  # same source: kept
    assert out.stat().st_mtime_ns == mtime
    with pytest.raises(ValueError, match="no such file .*NOISEX_BABBLE"):
        prepare_recording(tmp_path / "nope.wav", out)


# ------------------------------------------------------------- noisy sets
def _signal(n, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SR
    return 0.3 * np.sin(2 * np.pi * rng.uniform(100, 300) * t) + 0.01 * rng.standard_normal(n)


@pytest.fixture
def test_set(tmp_path):
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
    sf.write(tmp_path / "noise.wav", np.random.default_rng(9).standard_normal(16000)
             .astype(np.float32), SR, subtype="FLOAT")
    return data


def test_noisy_sets_hit_the_snr_and_are_deterministic(tmp_path, test_set):
    snrs = [-7.5, -2.5, 2.5, 7.5, 12.5]
    dirs = make_noisy_sets(test_set, tmp_path / "noise.wav", snrs,
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
    for parts in noise_parts.values():  # the same noise segment at every SNR
        for p in parts[1:]:
            np.testing.assert_allclose(p, parts[0], atol=1e-4)
    again = make_noisy_sets(test_set, tmp_path / "noise.wav", [2.5],
                            str(tmp_path / "again_snr"), str(tmp_path / "wav2/again_snr"), seed=0)
    a, _ = sf.read(read_kv(again[0] / "wav.scp")["u1"])
    b, _ = sf.read(read_kv(dirs[2] / "wav.scp")["u1"])
    np.testing.assert_array_equal(a, b)
    assert utterance_rng(0, "u1").integers(1 << 30) == utterance_rng(0, "u1").integers(1 << 30)


def test_noisy_wavs_follow_the_noise(tmp_path, test_set):
    args = (test_set, tmp_path / "noise.wav", [0.0], str(tmp_path / "t_snr"),
            str(tmp_path / "wav/t_snr"))
    out = make_noisy_sets(*args)[0]
    wav = read_kv(out / "wav.scp")["u0"]
    first = sf.read(wav)[0]
    mtime = os.stat(wav).st_mtime_ns
    make_noisy_sets(*args)  # nothing changed: kept
    assert os.stat(wav).st_mtime_ns == mtime
    sf.write(tmp_path / "noise.wav", np.random.default_rng(1).standard_normal(16000)
             .astype(np.float32), SR, subtype="FLOAT")  # another noise: remixed
    make_noisy_sets(*args)
    assert not np.array_equal(sf.read(wav)[0], first)
