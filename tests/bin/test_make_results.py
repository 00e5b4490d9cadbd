"""Stage 12's RESULTS.md over all of exp/: a broken experiment is reported
and the others' results are still written; model files load weights-only."""

import json
import shutil

import pytest

from espnet_msrs.bin.make_results import collect, main
from espnet_msrs.utils.safe_load import load_torch_file
from tests.helpers.micro_model import save_with_payload, truncate


def _experiment(exp_root, tag, model_src, wer):
    train = exp_root / tag / "train"
    train.mkdir(parents=True)
    shutil.copy(model_src, train / "valid.acc.ave.pth")
    score = exp_root / tag / "decode_asr" / "test" / "score"
    score.mkdir(parents=True)
    counts = {"n_ref": 10, "correct": 8, "substitutions": 1, "deletions": 1,
              "insertions": 0, "n_sent": 3, "n_sent_err": 1}
    (score / "result.json").write_text(json.dumps(
        {"wer": wer, "cer": wer / 2, "n_utts": 3, "word": counts, "char": counts,
         "scorer": "jiwer"}))
    return train / "valid.acc.ave.pth"


@pytest.fixture()
def exp_root(micro_exp, tmp_path):
    root = tmp_path / "exp"
    model = micro_exp["model"]
    _experiment(root, "a_good", model, 20.0)
    truncate(_experiment(root, "b_truncated", model, 30.0), 0.5)
    marker = tmp_path / "PAYLOAD_RAN"
    bad = _experiment(root, "c_payload", model, 40.0)
    save_with_payload(load_torch_file(model), bad, marker)
    (root / "d_bad_json" / "decode_asr" / "test" / "score").mkdir(parents=True)
    (root / "d_bad_json" / "decode_asr" / "test" / "score" / "result.json").write_text("{")
    _experiment(root, "e_good", model, 25.0)
    yield root
    assert not marker.exists(), "the pickle payload ran"


def test_broken_experiments_are_reported_and_the_others_written(exp_root, tmp_path):
    rows = collect(exp_root)
    assert [r["name"] for r in rows["model_rows"]] == ["a_good", "e_good"]
    broken = {b["name"]: b["error"] for b in rows["broken"]}
    assert set(broken) == {"b_truncated", "c_payload", "d_bad_json"}
    assert "truncated or corrupt" in broken["b_truncated"]
    assert "refusing to load" in broken["c_payload"]
    assert "result.json" in broken["d_bad_json"] or "Expecting" in broken["d_bad_json"]

    out = tmp_path / "RESULTS.md"
    tag_out = exp_root / "a_good" / "RESULTS.md"
    main(["--exp_root", str(exp_root), "--out", str(out), "--tag", "a_good",
          "--tag_out", str(tag_out), "--test_sets", "test"])
    text = out.read_text()
    assert "| a_good | test |" in text and "| e_good | test |" in text
    assert "## Broken experiments (left out)" in text
    assert "| b_truncated |" in text and "| c_payload |" in text
    assert "Broken" not in tag_out.read_text()


def test_a_broken_own_experiment_fails_after_writing_the_others(exp_root, tmp_path):
    out = tmp_path / "RESULTS.md"
    with pytest.raises(ValueError, match="experiment b_truncated is broken: .*truncated"):
        main(["--exp_root", str(exp_root), "--out", str(out), "--tag", "b_truncated",
              "--tag_out", str(exp_root / "b_truncated" / "RESULTS.md")])
    assert "| e_good | test |" in out.read_text()
    assert not (exp_root / "b_truncated" / "RESULTS.md").exists()
