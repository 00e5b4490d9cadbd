"""Stage 13's check of a packed model: a good archive decodes like
Speech2Text; crafted archives are refused through the command line and
their payload never runs (issue 11)."""

import json

import pytest
import soundfile as sf

from espnet_msrs.bin.check_packed_model import check_packed_model, main
from espnet_msrs.utils.data_dir import read_kv
from tests.helpers.micro_model import outside_path_zip, payload_zip, truncate


@pytest.fixture(scope="module")
def decode_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("decode") / "decode.yaml"
    path.write_text("beam_size: 2\nctc_weight: 0.3\nmaxlenratio: 0.5\n")
    return path


@pytest.fixture(scope="module")
def stage11_hyp(micro_exp, decode_config, tmp_path_factory):
    """The hypothesis ESPnet's Speech2Text gives on the training files."""
    from espnet2.bin.asr_inference import Speech2Text

    s2t = Speech2Text(asr_train_config=micro_exp["config"], asr_model_file=micro_exp["model"],
                      device="cpu", beam_size=2, ctc_weight=0.3, maxlenratio=0.5)
    uid, wav = next(iter(read_kv(micro_exp["test"] / "wav.scp").items()))
    speech, _ = sf.read(wav, dtype="float32")
    path = tmp_path_factory.mktemp("hyp") / "text"
    path.write_text(f"{uid} {s2t(speech)[0][0]}\n")
    return path


def test_good_archive_decodes_as_stage_11(micro_zip, micro_exp, decode_config, stage11_hyp,
                                          tmp_path):
    report = check_packed_model(str(micro_zip), str(micro_exp["test"]), "audio",
                                inference_config=str(decode_config),
                                reference_hyp=str(stage11_hyp),
                                cache_dir=str(tmp_path / "cache"))
    assert report["match"] is True
    assert report["hyp"].split() == report["reference_hyp"].split()
    assert set(report["unpacked"]) == {"asr_model_file", "asr_train_config"}


@pytest.mark.parametrize("attack", ["payload", "outside", "truncated"])
def test_crafted_archives_fail_the_check(attack, micro_zip, micro_exp, decode_config,
                                         tmp_path):
    marker = tmp_path / "PAYLOAD_RAN"
    bad = tmp_path / "model.zip"
    if attack == "payload":
        payload_zip(micro_zip, bad, marker)
    elif attack == "outside":
        outside_path_zip(micro_zip, bad, micro_exp["model"].resolve())
    else:
        bad.write_bytes(micro_zip.read_bytes())
        truncate(bad, 0.6)
    out = tmp_path / "check.json"
    rc = main(["--zip", str(bad), "--data_dir", str(micro_exp["test"]), "--modality", "audio",
               "--inference_config", str(decode_config), "--cache_dir", str(tmp_path / "cache"),
               "--out", str(out)])
    assert rc == 1
    report = json.loads(out.read_text())
    expected = {"payload": "refusing to load", "outside": "points outside the packed model",
                "truncated": "not a readable model archive"}[attack]
    assert report["ok"] is False and expected in report["error"]
    assert str(bad) in report["error"] or attack == "payload"
    assert not marker.exists()
