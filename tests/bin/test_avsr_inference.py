"""AVSpeech2Text and the inference command lines: model files are checked
before ESPnet loads them; audio at another rate is resampled, not halved."""

import logging

import pytest
import soundfile as sf

from espnet_msrs.bin import asr_inference, avsr_inference
from espnet_msrs.bin.avsr_inference import AVSpeech2Text, model_sample_rate
from espnet_msrs.utils.data_dir import read_kv
from espnet_msrs.utils.safe_load import UnsafeFileError, load_torch_file
from tests.helpers.micro_model import outside_path_zip, payload_zip, save_with_payload

DECODE = dict(device="cpu", beam_size=2, ctc_weight=0.3, maxlenratio=0.5)


@pytest.fixture()
def marker(tmp_path):
    path = tmp_path / "PAYLOAD_RAN"
    yield path
    assert not path.exists(), "the pickle payload ran"


@pytest.fixture()
def payload_model(micro_exp, tmp_path, marker):
    state = load_torch_file(micro_exp["model"])
    return save_with_payload(state, tmp_path / "model.pth", marker)


def test_from_pretrained_decodes_a_packed_model(micro_zip, micro_exp, tmp_path):
    s2t = AVSpeech2Text.from_pretrained(str(micro_zip), cachedir=str(tmp_path), **DECODE)
    uid, wav = next(iter(read_kv(micro_exp["test"] / "wav.scp").items()))
    speech, rate = sf.read(wav, dtype="float32")
    text = s2t(speech=speech, fs=rate, uid=uid)[0][0]
    assert isinstance(text, str) and s2t.sample_rate == 16000


def test_from_pretrained_refuses_a_payload(micro_zip, tmp_path, marker):
    bad = payload_zip(micro_zip, tmp_path / "model.zip", marker)
    with pytest.raises(UnsafeFileError, match="refusing to load"):
        AVSpeech2Text.from_pretrained(str(bad), cachedir=str(tmp_path / "cache"), **DECODE)


def test_from_pretrained_refuses_an_outside_path(micro_zip, micro_exp, tmp_path):
    bad = outside_path_zip(micro_zip, tmp_path / "model.zip", micro_exp["model"].resolve())
    with pytest.raises(UnsafeFileError, match="points outside the packed model"):
        AVSpeech2Text.from_pretrained(str(bad), cachedir=str(tmp_path / "cache"), **DECODE)


def test_constructor_checks_the_model_file(micro_exp, payload_model):
    with pytest.raises(UnsafeFileError, match=r"model.pth: refusing to load this --asr_model_file"):
        AVSpeech2Text(asr_train_config=str(micro_exp["config"]),
                      asr_model_file=str(payload_model), **DECODE)


@pytest.mark.parametrize("entry", [avsr_inference.main, asr_inference.main])
def test_command_lines_refuse_a_payload(entry, micro_exp, payload_model, tmp_path):
    argv = ["--asr_train_config", str(micro_exp["config"]), "--asr_model_file",
            str(payload_model), "--output_dir", str(tmp_path / "out"),
            "--data_path_and_name_and_type", f"{micro_exp['test']}/wav.scp,speech,sound"]
    with pytest.raises(SystemExit) as err:
        entry(argv)
    assert "refusing to load" in str(err.value.code) and str(payload_model) in str(err.value.code)
    assert not (tmp_path / "out").exists()


def test_command_line_model_tag_is_unpacked_safely(micro_zip, tmp_path, marker, monkeypatch):
    from espnet_msrs.utils import safe_load

    unpack = safe_load.unpack_packed_model  # into tmp_path, not the zoo's cache
    monkeypatch.setattr(safe_load, "unpack_packed_model",
                        lambda tag, cachedir=None: unpack(tag, tmp_path / "cache"))
    bad = payload_zip(micro_zip, tmp_path / "model.zip", marker)
    with pytest.raises(UnsafeFileError, match="refusing to load"):
        avsr_inference.safe_inference_argv(["--model_tag", str(bad), "--output_dir", "x"])
    argv = avsr_inference.safe_inference_argv(
        ["--model_tag", str(micro_zip), "--output_dir", "x", "--beam_size", "2"])
    assert "--model_tag" not in argv and "--asr_model_file" in argv
    assert argv[:4] == ["--output_dir", "x", "--beam_size", "2"]


def test_8khz_audio_is_resampled_with_a_warning(micro_exp, caplog):
    s2t = AVSpeech2Text(asr_train_config=str(micro_exp["config"]),
                        asr_model_file=str(micro_exp["model"]), **DECODE)
    seen = []
    decode = s2t.speech2text
    s2t.speech2text = lambda speech: seen.append(len(speech)) or decode(speech)
    wav = next(iter(read_kv(micro_exp["test"] / "wav.scp").values()))
    speech16k, _ = sf.read(wav, dtype="float32")
    speech8k = speech16k[::2].copy()
    with caplog.at_level(logging.WARNING):
        s2t(speech=speech8k, fs=8000, uid="u8k")
    assert seen == [2 * len(speech8k)]
    assert "utterance u8k: audio at 8000 Hz, the model expects 16000 Hz: resampled" in caplog.text
    s2t(speech=speech16k, fs=16000, uid="u16k")
    assert seen[-1] == len(speech16k)


def test_model_sample_rate_from_the_config():
    from argparse import Namespace

    assert model_sample_rate(Namespace(frontend_conf={"fs": "8k"})) == 8000
    assert model_sample_rate(Namespace(frontend_conf={})) == 16000
    assert model_sample_rate(Namespace(preprocessor="av",
                                       preprocessor_conf={"sample_rate": 24000})) == 24000
