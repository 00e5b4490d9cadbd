"""Tests of the decoding-speed benchmark (bench/decoding.py).

No speed is asserted: the real ESPnet beam searches decode a tiny corpus with
a tiny model, both searches find the same hypotheses, and the reported RTF
is the measured CPU time over the speech duration.
"""

import argparse
import json
from pathlib import Path

import pytest
import torch
import yaml

from bench import decoding
from tests.helpers.tiny_corpus import make_tiny_corpus

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "conf" / "tuning" / "train_avsr_tiny.yaml"
DEMO_DECODE = REPO / "conf" / "decode_asr_demo.yaml"


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    root = tmp_path_factory.mktemp("decoding")
    corpus = make_tiny_corpus(root, sets={"test": 2})
    # a "trained" model: a checkpoint of the tiny config with a small vocabulary
    from espnet_msrs.tasks.asr import MSRSASRTask

    spec = decoding.ModelSpec("trained", TINY)
    config = decoding._random_weight_config(spec, 20, root)
    torch.manual_seed(1)
    args = argparse.Namespace(**yaml.safe_load(config.read_text()))  # as ESPnet loads it
    model_file = root / "model.pth"
    torch.save(MSRSASRTask.build_model(args).state_dict(), model_file)
    out = root / "decoding.json"
    returned = decoding.main([
        "--data_dir", str(corpus["test"]), "--num_utts", "2", "--warmup", "1",
        "--vocab_size", "30", "--tokens_per_second", "5",
        "--model", f"tiny={TINY}",
        "--model", f"trained={config}:{model_file}:{DEMO_DECODE}",
        "--out", str(out),
    ])
    written = json.loads(out.read_text())
    assert written["models"].keys() == returned["models"].keys()
    return written


def test_random_weight_model_decodes_hypotheses_of_the_set_length(result):
    tiny = result["models"]["tiny"]
    assert tiny["random_weights"] and tiny["decode"]["maxlenratio"] == 5 / 25
    assert tiny["decode"]["beam_size"] == 5  # the first model: the demo's decode config
    for ids, seconds in zip(tiny["batch"]["token_ids"], result["utt_seconds"]):
        # the av_resnet front end and a linear input layer keep 25 frames/s
        assert len(ids) == int(0.2 * round(seconds * 25))


def test_batch_and_plain_beam_search_agree(result):
    # The same search, batched or not: the same hypotheses when their length
    # is fixed. (With end detection, near-tied scores of an untrained model
    # may end the two at different steps.)
    tiny = result["models"]["tiny"]
    assert tiny["batch"]["token_ids"] == tiny["plain"]["token_ids"]
    for m in result["models"].values():
        assert all(len(ids) > 0 for ids in m["batch"]["token_ids"] + m["plain"]["token_ids"])


def test_rtf_is_cpu_time_over_speech_time(result):
    assert result["seconds"] == pytest.approx(sum(result["utt_seconds"]))
    for m in result["models"].values():
        for search in decoding.SEARCHES:
            s = m[search]
            assert s["rtf"] == pytest.approx(sum(s["cpu_per_utt"]["samples"])
                                             / result["seconds"])
            assert s["cpu_per_utt"]["n"] == 2 and 0 < s["encoder_share"]
        plain = m["plain"]["cpu_per_utt"]["samples"]
        batch = m["batch"]["cpu_per_utt"]["samples"]
        assert m["batch_vs_plain"]["median"] == pytest.approx(
            sorted(p / b for p, b in zip(plain, batch))[0] / 2
            + sorted(p / b for p, b in zip(plain, batch))[1] / 2)
    trained = result["models"]["trained"]
    assert not trained["random_weights"] and trained["params"] > 0
    assert result["machine"]["torch_threads"] == 1


def test_bad_model_option_is_named(tmp_path):
    with pytest.raises(ValueError, match="NAME=CONFIG"):
        decoding.ModelSpec.parse("no_equals_sign", True)
    with pytest.raises(ValueError, match="nowhere.yaml is not a file"):
        decoding.ModelSpec.parse(f"x={tmp_path / 'nowhere.yaml'}", True)
