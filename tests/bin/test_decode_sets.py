"""Stage 11's decoder: bad utterances are reported and left out, the others
decoded; old outputs are never taken for new ones; the model file is
checked before ESPnet loads it (issue 11)."""

import logging

import numpy as np
import pytest
import soundfile as sf

from espnet_msrs.bin.decode_sets import main
from espnet_msrs.utils.data_dir import read_kv
from espnet_msrs.utils.safe_load import UnsafeFileError, load_torch_file
from tests.helpers.micro_model import save_with_payload


def _decode_args(micro_exp, model=None):
    return ["--", "--asr_train_config", str(micro_exp["config"]),
            "--asr_model_file", str(model or micro_exp["model"]),
            "--beam_size", "2", "--ctc_weight", "0.3", "--maxlenratio", "0.5", "--ngpu", "0"]


@pytest.fixture()
def bad_set(micro_exp, tmp_path):
    """The test set plus a corrupt wav and an 8 kHz wav."""
    d = tmp_path / "bad"
    d.mkdir()
    wavs = dict(read_kv(micro_exp["test"] / "wav.scp"))
    texts = dict(read_kv(micro_exp["test"] / "text"))
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00 definitely not audio")
    low = tmp_path / "low.wav"
    first, _ = sf.read(next(iter(wavs.values())), dtype="float32")
    sf.write(low, first[::2], 8000)
    wavs.update({"x-corrupt": str(corrupt), "x-8k": str(low)})
    texts.update({"x-corrupt": "A", "x-8k": "B"})
    (d / "wav.scp").write_text("".join(f"{k} {v}\n" for k, v in sorted(wavs.items())))
    (d / "text").write_text("".join(f"{k} {v}\n" for k, v in sorted(texts.items())))
    return d


def test_bad_files_are_left_out_and_listed_the_rest_decoded(micro_exp, bad_set, tmp_path,
                                                           caplog):
    out = tmp_path / "out"
    good = micro_exp["test"]
    with caplog.at_level(logging.INFO):
        main(["--set", f"good|{good}/wav.scp,speech,sound",
              "--set", f"bad|{bad_set}/wav.scp,speech,sound",
              "--output_pattern", f"{out}/{{set}}", *_decode_args(micro_exp)])
    bad = dict(line.split("\t", 1) for line in
               (out / "bad" / "bad_utts.txt").read_text().splitlines())
    assert set(bad) == {"x-corrupt", "x-8k"}
    assert "audio at 8000 Hz, the model expects 16000 Hz" in bad["x-8k"]
    assert "Error" in bad["x-corrupt"] or "error" in bad["x-corrupt"]
    test_keys = set(read_kv(good / "wav.scp"))
    hyp_bad = read_kv(out / "bad" / "1best_recog" / "text", allow_empty_value=True)
    assert set(hyp_bad) == test_keys
    hyp_good = read_kv(out / "good" / "1best_recog" / "text", allow_empty_value=True)
    assert set(hyp_good) == test_keys and dict(hyp_good) == dict(hyp_bad)
    assert (out / "good" / "bad_utts.txt").read_text() == ""
    assert "utterance=x-8k: left out" in caplog.text


def test_old_outputs_are_decoded_again(micro_exp, tmp_path):
    out = tmp_path / "out" / "test"
    (out / "1best_recog").mkdir(parents=True)
    keys = list(read_kv(micro_exp["test"] / "wav.scp"))
    (out / "1best_recog" / "text").write_text("".join(f"{k} STALE\n" for k in keys))
    main(["--set", f"test|{micro_exp['test']}/wav.scp,speech,sound",
          "--output_pattern", f"{tmp_path / 'out'}/{{set}}", *_decode_args(micro_exp)])
    hyps = read_kv(out / "1best_recog" / "text", allow_empty_value=True)
    assert list(hyps) == keys and "STALE" not in hyps.values()


def test_a_payload_model_is_refused_before_decoding(micro_exp, tmp_path):
    marker = tmp_path / "PAYLOAD_RAN"
    model = save_with_payload(load_torch_file(micro_exp["model"]), tmp_path / "m.pth", marker)
    with pytest.raises(UnsafeFileError, match="refusing to load"):
        main(["--set", f"test|{micro_exp['test']}/wav.scp,speech,sound",
              "--output_pattern", f"{tmp_path / 'out'}/{{set}}",
              *_decode_args(micro_exp, model)])
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_all_utterances_bad_gives_an_empty_result(micro_exp, tmp_path):
    d = tmp_path / "low"
    d.mkdir()
    wav = next(iter(read_kv(micro_exp["test"] / "wav.scp").values()))
    x, _ = sf.read(wav, dtype="float32")
    sf.write(tmp_path / "a.wav", np.asarray(x[::2]), 8000)
    (d / "wav.scp").write_text(f"a {tmp_path / 'a.wav'}\n")
    main(["--set", f"low|{d}/wav.scp,speech,sound",
          "--output_pattern", f"{tmp_path / 'out'}/{{set}}", *_decode_args(micro_exp)])
    assert (tmp_path / "out" / "low" / "1best_recog" / "text").read_text() == ""
    assert "8000 Hz" in (tmp_path / "out" / "low" / "bad_utts.txt").read_text()
