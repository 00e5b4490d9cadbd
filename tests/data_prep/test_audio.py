"""espnet_msrs.data_prep.audio (stage 2 resampling, bin/resample_audio): rates
counted and listed, outputs remade when their source changes."""

import logging

import numpy as np
import soundfile as sf

from espnet_msrs.bin.resample_audio import main as resample_main
from espnet_msrs.data_prep.audio import extract_audio, resample_scp
from espnet_msrs.utils.data_dir import read_kv

SR = 16000


def _tone(path, rate, seconds=1.5, freq=440.0):
    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, 0.5 * np.sin(2 * np.pi * freq * t), rate, subtype="PCM_16")
    return path


def _peak_hz(path):
    y, sr = sf.read(path)
    return np.argmax(np.abs(np.fft.rfft(y))) * sr / len(y)


def test_resample_to_16k_and_failures(tmp_path):
    _tone(tmp_path / "a.wav", 22050)
    (tmp_path / "wav.scp").write_text(f"a {tmp_path / 'a.wav'}\nb {tmp_path / 'missing.wav'}\n")
    args = ["--wav_scp", str(tmp_path / "wav.scp"), "--out_dir", str(tmp_path / "o"),
            "--out_scp", str(tmp_path / "o/wav.scp")]
    assert resample_main(args) == 1  # the missing file fails the run ...
    assert resample_main(args + ["--allow_failures", "true"]) == 0  # ... unless allowed
    assert read_kv(tmp_path / "o/wav.scp") == {"a": str(tmp_path / "o/a.wav")}
    assert "missing.wav" in (tmp_path / "o/failed.txt").read_text()
    y, sr = sf.read(tmp_path / "o/a.wav")
    assert sr == SR and len(y) == 24000
    assert abs(_peak_hz(tmp_path / "o/a.wav") - 440) < 2  # same tone


def test_source_rates_are_counted_and_resamplings_listed(tmp_path, caplog):
    _tone(tmp_path / "x16.wav", 16000)
    _tone(tmp_path / "y8.wav", 8000)
    scp = tmp_path / "wav.scp"
    scp.write_text(f"x {tmp_path / 'x16.wav'}\ny {tmp_path / 'y8.wav'}\n")
    with caplog.at_level(logging.INFO, logger="espnet_msrs.data_prep.audio"):
        counts = resample_scp(scp, tmp_path / "o", tmp_path / "o/wav.scp")
    assert counts == {"written": 2, "kept": 0, "failed": 0, "resampled": 1}
    assert (tmp_path / "o/resampled.txt").read_text() == f"y\t8000\t{tmp_path / 'y8.wav'}\n"
    log = caplog.text
    assert "source rates: 16000 Hz: 1, 8000 Hz: 1 (resampled)" in log
    assert f"1 utterance(s) were not at 16000 Hz and were resampled (listed in " \
           f"{tmp_path / 'o/resampled.txt'})" in log
    # a second run keeps both outputs and still reports the rates
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="espnet_msrs.data_prep.audio"):
        again = resample_scp(scp, tmp_path / "o", tmp_path / "o/wav.scp")
    assert again == {"written": 0, "kept": 2, "failed": 0, "resampled": 1}
    assert "8000 Hz: 1 (resampled)" in caplog.text


def test_an_output_follows_its_source(tmp_path):
    _tone(tmp_path / "low.wav", 16000, freq=300.0)
    _tone(tmp_path / "high.wav", 16000, freq=1000.0)
    scp = tmp_path / "wav.scp"
    scp.write_text(f"u {tmp_path / 'low.wav'}\n")
    resample_scp(scp, tmp_path / "o", tmp_path / "o/wav.scp")
    assert abs(_peak_hz(tmp_path / "o/u.wav") - 300) < 2
    scp.write_text(f"u {tmp_path / 'high.wav'}\n")  # another file in wav.scp
    assert resample_scp(scp, tmp_path / "o", tmp_path / "o/wav.scp")["written"] == 1
    assert abs(_peak_hz(tmp_path / "o/u.wav") - 1000) < 2
    _tone(tmp_path / "high.wav", 16000, freq=500.0)  # the same path, new content
    assert resample_scp(scp, tmp_path / "o", tmp_path / "o/wav.scp")["written"] == 1
    assert abs(_peak_hz(tmp_path / "o/u.wav") - 500) < 2
    assert resample_scp(scp, tmp_path / "o", tmp_path / "o/wav.scp")["written"] == 0


def test_extract_audio_returns_the_stream_rate(tmp_path):
    _tone(tmp_path / "a.wav", 8000)
    audio, rate = extract_audio(tmp_path / "a.wav")
    assert rate == 8000 and len(audio) == 24000 and audio.dtype == np.float32
