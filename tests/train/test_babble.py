"""Tests of espnet_msrs.train.babble (babble-noise wav)."""

import logging
import os

import numpy as np
import pytest
import soundfile

from espnet_msrs.train.babble import main, make_babble, read_wav_scp


@pytest.fixture
def wavs(tmp_path):
    """Five utterances of 0.1..0.5 s at 16 kHz with different levels."""
    rng = np.random.default_rng(0)
    paths = []
    for i in range(5):
        path = tmp_path / f"u{i}.wav"
        audio = (i + 1) * 0.05 * rng.standard_normal(1600 * (i + 1))
        soundfile.write(path, audio, 16000)
        paths.append(str(path))
    return paths


def test_babble_written_once_with_expected_length(tmp_path, wavs, caplog):
    out = tmp_path / "dump" / "babble.wav"
    make_babble(wavs, out, num_utts=5, seed=0)
    audio, rate = soundfile.read(out)
    assert rate == 16000 and audio.ndim == 1
    assert audio.shape == (8000,)  # the longest utterance
    assert np.max(np.abs(audio)) == pytest.approx(0.9, abs=1e-3)
    assert sorted(os.listdir(out.parent)) == ["babble.wav"]  # no temp file left
    mtime = out.stat().st_mtime_ns
    with caplog.at_level(logging.INFO):
        make_babble(wavs, out, num_utts=2, seed=1)
    assert out.stat().st_mtime_ns == mtime
    assert "exists, skipping" in caplog.text


def test_babble_sums_unit_rms_tiled_utterances(tmp_path, wavs):
    out = make_babble(wavs[:2], tmp_path / "b.wav", num_utts=2, seed=0)
    audio, _ = soundfile.read(out)
    parts = []
    for path in wavs[:2]:
        x, _ = soundfile.read(path)
        parts.append(np.resize(x / np.sqrt(np.mean(x**2)), 3200))
    expected = parts[0] + parts[1]
    expected *= 0.9 / np.max(np.abs(expected))
    np.testing.assert_allclose(audio, expected, atol=2e-4)  # 16-bit PCM


def test_seed_chooses_the_utterances(tmp_path, wavs):
    a = soundfile.read(make_babble(wavs, tmp_path / "a.wav", num_utts=2, seed=0))[0]
    b = soundfile.read(make_babble(wavs, tmp_path / "b.wav", num_utts=2, seed=0))[0]
    c = [
        soundfile.read(make_babble(wavs, tmp_path / f"c{s}.wav", num_utts=2, seed=s))[0]
        for s in range(1, 6)
    ]
    np.testing.assert_array_equal(a, b)
    assert any(x.shape != a.shape or not np.array_equal(x, a) for x in c)


def test_bad_inputs(tmp_path, wavs):
    with pytest.raises(ValueError, match="num_utts=9 but only 5"):
        make_babble(wavs, tmp_path / "x.wav", num_utts=9)
    other = tmp_path / "8k.wav"
    soundfile.write(other, np.ones(80) * 0.1, 8000)
    with pytest.raises(ValueError, match="8k.wav has sample rate 8000"):
        make_babble([str(other)], tmp_path / "x.wav", num_utts=1)
    assert not (tmp_path / "x.wav").exists()


def test_cli_reads_wav_scp(tmp_path, wavs):
    scp = tmp_path / "wav.scp"
    scp.write_text("".join(f"utt{i} {p}\n" for i, p in enumerate(wavs)))
    out = tmp_path / "cli.wav"
    main(["--wav_scp", str(scp), "--out", str(out), "--num_utts", "3", "--seed", "0"])
    info = soundfile.info(out)
    assert info.samplerate == 16000 and info.channels == 1
    assert 1600 <= info.frames <= 8000


@pytest.mark.parametrize(
    "content, expected",
    [("utt1\n", r"wav\.scp:1: malformed"), ("utt1 sox a.wav -t wav - |\n", "piped")],
)
def test_bad_wav_scp(tmp_path, content, expected):
    scp = tmp_path / "wav.scp"
    scp.write_text(content)
    with pytest.raises(ValueError, match=expected):
        read_wav_scp(scp)
