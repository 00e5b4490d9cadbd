"""espnet_msrs.data_prep.data_report: the "Test data" section of RESULTS.md."""

import numpy as np
import pytest
import soundfile as sf

from espnet_msrs.data_prep.data_report import parse_sizes, describe_test_data
from espnet_msrs.data_prep.noise import make_babble
from espnet_msrs.utils.data_dir import write_report


def _text(path, keys):
    path.mkdir(parents=True, exist_ok=True)
    (path / "text").write_text("".join(f"{k} W\n" for k in keys))


def test_dropped_utterances_validation_overlap_and_noise(tmp_path):
    data, dump = tmp_path / "data", tmp_path / "dump"
    test = [f"t{i}" for i in range(5)]
    _text(data / "test", test)
    write_report(data / "test" / "dropped.txt", [("t9", "/x/t9.txt: empty transcript")])
    _text(dump / "raw" / "org" / "test", test[:3])
    write_report(dump / "raw" / "org" / "test" / "bad_utts.txt",
                 [("t3", "corrupt video /x/t3.mp4: truncated"), ("t4", "empty text")])
    _text(dump / "raw" / "test", test[:3])
    _text(data / "dev_clean", ["d1", "d2"])
    _text(dump / "raw" / "org" / "dev_clean", ["d1", "d2"])
    _text(dump / "raw" / "dev_clean", ["d1", "d2"])
    _text(dump / "raw" / "dev", ["d1", "d2", "d3"])
    sf.write(tmp_path / "u.wav", np.random.default_rng(0).standard_normal(1600) * 0.1, 16000)
    (tmp_path / "wav.scp").write_text(f"u {tmp_path / 'u.wav'}\n")
    noise = make_babble(tmp_path / "wav.scp", tmp_path / "babble.wav", num_utts=3)
    decode = tmp_path / "decode"  # stage 11 left t2 out (and t1 of one noisy copy)
    write_report(decode / "test" / "bad_utts.txt",
                 [("t2", "audio at 8000 Hz, the model expects 16000 Hz (speech; resample it)")])
    write_report(decode / "test_snr0" / "bad_utts.txt", [("t1", "RuntimeError: bad file")])
    write_report(decode / "test_snr5" / "bad_utts.txt", [])
    section = describe_test_data(["test", "dev_clean"], "dev", data, dump,
                                official_sizes=parse_sizes("test=6"),
                                noises={"train": noise, "test": noise}, decode_dir=decode)
    rows = section.splitlines()
    assert rows[0] == "## Test data"
    test_row = next(r for r in rows if r.startswith("| test |"))
    assert test_row == ("| test | 6 | 5 | 3 | 2 | stage 1: 1 of the official set not listed "
                        "(empty transcript: 1); stage 3: 2 (corrupt video: 1, empty text: 1); "
                        "decoding: 1 (audio at 8000 Hz, the model expects 16000 Hz: 1; counted "
                        "as deleted); decoding of its noisy copies: 1 (RuntimeError: 1; "
                        f"{decode}/test_snr*/bad_utts.txt) |  |")
    assert "- `t2`: audio at 8000 Hz, the model expects 16000 Hz (speech; resample it)" in rows
    dev_row = next(r for r in rows if r.startswith("| dev_clean |"))
    assert dev_row.endswith("| **2 of 2 utterances are also in the validation set dev**: "
                            "its WER is optimistic |")
    assert "- `t3`: corrupt video /x/t3.mp4: truncated" in rows
    assert "- `t9`: /x/t9.txt: empty transcript" in rows
    assert (f"- training augmentation: synthetic babble: 1 utterances of {tmp_path / 'wav.scp'} "
            f"summed (seed 0, 0.1 s)") in rows


def test_a_test_set_that_is_the_validation_set_is_flagged(tmp_path):
    _text(tmp_path / "dump" / "raw" / "valid", ["a", "b"])
    section = describe_test_data(["valid"], "valid", tmp_path / "data", tmp_path / "dump")
    assert "**also the validation set**: checkpoints were chosen on it" in section


def test_official_sizes_are_checked():
    assert parse_sizes("test=1321 dev_clean=2703") == {"test": 1321, "dev_clean": 2703}
    with pytest.raises(ValueError, match="entry 'test:1321': expected <set>=<utterances>"):
        parse_sizes("test:1321")
