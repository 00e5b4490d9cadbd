"""Stage-3 validation (espnet_msrs.data_prep.validate, bin/validate_data): each
kind of bad utterance is caught, listed with its reason and excluded (or
fails --strict); each kind is warned about once."""

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from espnet_msrs.bin.validate_data import main
from espnet_msrs.data_prep.validate import Expectations, validate_data_dir, wav_truncation
from espnet_msrs.video.io import write_video

SR, FPS, SIZE = 16000, 25, 96


def _wav(path: Path, seconds: float, rate: int = SR) -> str:
    n = int(round(seconds * rate))
    t = np.arange(n) / rate
    sf.write(path, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), rate,
             subtype="PCM_16")
    return str(path)


def _mp4(path: Path, frames: int) -> str:
    rng = np.random.default_rng(frames)
    write_video(path, rng.integers(0, 255, (frames, SIZE, SIZE), dtype=np.uint8), fps=FPS)
    return str(path)


@pytest.fixture(scope="module")
def bad_dir(tmp_path_factory):
    """A data dir with one good utterance and one of each defect."""
    root = tmp_path_factory.mktemp("validate")
    good_mp4 = _mp4(root / "good.mp4", 20)  # 0.8 s
    corrupt = root / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
    utts = {
        # uid: (text, wav, video)
        "u1_good": ("BIN BLUE", _wav(root / "good.wav", 0.8), good_mp4),
        "u2_missing_video": ("BIN RED", _wav(root / "u2.wav", 0.8), str(root / "nope.mp4")),
        "u3_corrupt_video": ("LAY RED", _wav(root / "u3.wav", 0.8), str(corrupt)),
        "u4_empty_text": ("", _wav(root / "u4.wav", 0.8), good_mp4),
        "u5_mismatch": ("SET WHITE", _wav(root / "u5.wav", 2.0), good_mp4),
        "u6_rate": ("PLACE GREEN", _wav(root / "u6.wav", 0.8, rate=8000), good_mp4),
        "u7_no_video_entry": ("BIN BLUE", _wav(root / "u7.wav", 0.8), None),
    }
    d = root / "data"
    d.mkdir()
    (d / "text").write_text("".join(f"{u} {t}\n" if t else f"{u}\n" for u, (t, _, _) in utts.items()))
    (d / "wav.scp").write_text("".join(f"{u} {w}\n" for u, (_, w, _) in utts.items()))
    (d / "video.scp").write_text(
        "".join(f"{u} {v}\n" for u, (_, _, v) in utts.items() if v is not None))
    (d / "utt2spk").write_text("".join(f"{u} spk\n" for u in utts))
    (root / "failed_video.txt").write_text("u7_no_video_entry\tno face found in any frame\n")
    return root


@pytest.fixture(scope="module")
def report(bad_dir):
    return validate_data_dir(
        str(bad_dir / "data"), str(bad_dir / "out"), Expectations("av", SR, FPS, SIZE, 2),
        failed_lists=[str(bad_dir / "failed_video.txt")],
    )


@pytest.mark.parametrize(
    "uid, reason",
    [
        ("u2_missing_video", "missing video file"),
        ("u3_corrupt_video", "corrupt video"),
        ("u4_empty_text", "empty text"),
        ("u5_mismatch", "audio/video length mismatch"),
        ("u6_rate", "wrong sample rate: 8000 Hz"),
        ("u7_no_video_entry", "missing video: no entry in video.scp (no face found"),
    ],
)
def test_each_defect_is_listed_with_its_reason(bad_dir, report, uid, reason):
    listed = dict(
        line.split("\t", 1) for line in (bad_dir / "out" / "bad_utts.txt").read_text().splitlines()
    )
    assert reason in listed[uid]
    assert reason in report["bad"][uid]


def test_only_good_utterances_are_written(bad_dir, report):
    out = bad_dir / "out"
    assert report["num_input"] == 7 and report["num_valid"] == 1 and report["num_bad"] == 6
    for name in ("text", "wav.scp", "video.scp", "utt2spk", "utt2dur", "utt2num_frames"):
        keys = [line.split()[0] for line in (out / name).read_text().splitlines()]
        assert keys == ["u1_good"], name
    assert (out / "spk2utt").read_text() == "spk u1_good\n"
    assert (out / "utt2num_frames").read_text() == "u1_good 20\n"
    assert (out / "utt2dur").read_text() == "u1_good 0.8000\n"
    saved = json.loads((out / "validation.json").read_text())
    assert saved["reasons"]["empty text"] == 1 and saved["num_bad"] == 6


def test_strict_fails_and_names_the_list(bad_dir):
    out = bad_dir / "strict"
    with pytest.raises(ValueError, match="6 bad utterance"):
        validate_data_dir(str(bad_dir / "data"), str(out), Expectations("av"), strict=True)
    assert not (out / "text").exists()  # nothing formatted
    assert len((out / "bad_utts.txt").read_text().splitlines()) == 6
    # the command line reports the failure through its exit status
    assert main(["--in_dir", str(bad_dir / "data"), "--out_dir", str(out),
                 "--modality", "av", "--strict", "true"]) == 1


def test_modality_decides_what_is_checked(bad_dir):
    # audio only: video defects do not matter, the 8 kHz wav and empty text still do
    rep = validate_data_dir(str(bad_dir / "data"), str(bad_dir / "audio"),
                            Expectations("audio", SR, FPS, SIZE, 2), nj=2)
    assert set(rep["bad"]) == {"u4_empty_text", "u6_rate"}
    assert not (bad_dir / "audio" / "video.scp").exists()
    # video only: the audio is never opened
    rep = validate_data_dir(str(bad_dir / "data"), str(bad_dir / "video"),
                            Expectations("video", SR, FPS, SIZE, 2))
    assert set(rep["bad"]) == {"u2_missing_video", "u3_corrupt_video", "u4_empty_text",
                               "u7_no_video_entry"}
    assert (bad_dir / "video" / "utt2dur").read_text().splitlines()[0] == "u1_good 0.8000"


def test_wrong_frame_size(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    small = tmp_path / "small.mp4"
    write_video(small, np.zeros((10, 64, 64), np.uint8), fps=FPS)
    (d / "text").write_text("a HELLO\n")
    (d / "video.scp").write_text(f"a {small}\n")
    with pytest.raises(ValueError, match="no valid utterance"):
        validate_data_dir(str(d), str(tmp_path / "o"), Expectations("video", frame_size=96))
    assert "wrong frame size: 64x64" in (tmp_path / "o" / "bad_utts.txt").read_text()


def test_video_dump_to_npy(bad_dir):
    out = bad_dir / "npy"
    rep = validate_data_dir(str(bad_dir / "data"), str(out), Expectations("video", SR, FPS, SIZE, 2),
                            video_dump_dir=str(out / "video_npy"))
    assert rep["num_valid"] == 3  # u1, u5, u6 share the good video
    scp = dict(line.split() for line in (out / "video.scp").read_text().splitlines())
    assert scp["u1_good"] == str(out / "video_npy" / "u1_good.npy")
    from espnet_msrs.video.io import read_video

    dumped = np.load(scp["u1_good"])
    assert dumped.dtype == np.uint8 and dumped.shape == (20, SIZE, SIZE)
    np.testing.assert_array_equal(dumped, read_video(bad_dir / "good.mp4"))
    assert not (out / "video_npy" / "u3_corrupt_video.npy").exists()  # bad ones are not dumped


def test_a_wav_cut_to_half_is_caught_in_audio_only_mode(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    full = Path(_wav(tmp_path / "full.wav", 1.0))
    cut = tmp_path / "cut.wav"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    data, _ = sf.read(cut)  # libsndfile reads it without complaint: half the samples
    assert len(data) < SR
    (d / "text").write_text("a HELLO\nb WORLD\n")
    (d / "wav.scp").write_text(f"a {full}\nb {cut}\n")
    (d / "utt2spk").write_text("a s\nb s\n")
    rep = validate_data_dir(d, tmp_path / "o", Expectations("audio"))
    assert set(rep["bad"]) == {"b"}
    declared = SR * 2  # 16-bit mono: 2 bytes a sample
    assert rep["bad"]["b"] == (f"truncated audio {cut}: the header declares {declared} bytes "
                               f"of samples, the file holds {cut.stat().st_size - 44}")
    assert wav_truncation(full) is None


def test_a_text_line_that_is_not_utf8_is_one_bad_utterance(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    wav = _wav(tmp_path / "a.wav", 0.5)
    (d / "text").write_bytes(b"a HELLO\nb CAF\xe9\nc WORLD\n")  # latin-1 byte on line 2
    (d / "wav.scp").write_text(f"a {wav}\nb {wav}\nc {wav}\n")
    (d / "utt2spk").write_text("a s\nb s\nc s\n")
    rep = validate_data_dir(d, tmp_path / "o", Expectations("audio"))
    assert rep["bad"] == {"b": f"text not valid UTF-8: {d / 'text'}:2: not valid UTF-8 "
                               f"(byte 0xe9 at column 6); convert the file to UTF-8"}
    assert (tmp_path / "o" / "text").read_text() == "a HELLO\nc WORLD\n"


def test_each_kind_of_problem_is_warned_once(bad_dir, caplog):
    with caplog.at_level(logging.DEBUG, logger="espnet_msrs.data_prep.validate"):
        validate_data_dir(bad_dir / "data", bad_dir / "warn", Expectations("av", SR, FPS, SIZE, 2),
                          failed_lists=[bad_dir / "failed_video.txt"])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 5  # six kinds, one utterance each; one reported at stage 2
    assert any(w.startswith("1 bad utterance(s): empty text (e.g. u4_empty_text: empty text)")
               for w in warnings)
    assert all(w.endswith(f"all listed in {bad_dir / 'warn' / 'bad_utts.txt'}") for w in warnings)
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any(m.startswith("1 bad utterance(s): missing video (e.g. u7_no_video_entry")
               and m.endswith("(reported by an earlier stage)") for m in infos)
