"""Micro end-to-end recipe: stages 1-13 of egs2/synthgrid/avsr1 on a few
synthetic utterances (2 speakers x 8 sentences, one epoch a training phase),
as a user runs it (``./run.sh``), in a sandbox copy of the recipe.

A broken stage fails here: every stage must write its real outputs (data
directories, markers, the MSRS mask, the averaged model, decodings,
RESULTS.md with WER lines, the packed zip and its check), and a second run
must redo nothing. Stages 1-7 are the session's ``micro_data`` (run once,
shared with the other recipe tests): ``./run.sh --stop_stage 7`` there,
then ``./run.sh`` in a copy of that directory, which finds stages 1-7 done
and runs 8-13. About 3 minutes on 2 CPU cores.
"""

import json
import re
import zipfile

import pytest
import torch
import yaml

from tests.recipe.fixtures import MICRO_OPTS, micro_recipe, run_recipe

SPEAKERS, SENTENCES, VALID, TEST = 2, 8, 1, 2
MICRO = (*MICRO_OPTS, "--asr_args", "--max_epoch 1")
TAG = "av_msrs_sparse"
DECODE = "decode_decode_asr_valid_acc_ave"
NOISY = ("test_snr-7.5", "test_snr-2.5", "test_snr2.5", "test_snr7.5", "test_snr12.5")
_STAGE_LINE = re.compile(r"\) Stage (\d+): (.*)$", re.M)


@pytest.fixture(scope="module")
def micro(micro_data, tmp_path_factory):
    recipe = micro_recipe(micro_data, tmp_path_factory.mktemp("micro"))
    first = run_recipe(recipe, *MICRO)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    second = run_recipe(recipe, *MICRO)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    return {"recipe": recipe, "exp": recipe / "exp" / TAG, "prep": micro_data["proc"],
            "first": first, "second": second}


def _lines(path):
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _started(proc):
    return {int(n) for n, what in _STAGE_LINE.findall(proc.stdout) if "done already" not in what}


def test_every_stage_runs_and_finishes(micro):
    assert _started(micro["prep"]) == set(range(1, 8))
    # in the copy, stages 1-7 hold (their markers and outputs moved along)
    done = {int(n) for n, what in _STAGE_LINE.findall(micro["first"].stdout)
            if "done already" in what}
    assert done == set(range(1, 8))
    assert _started(micro["first"]) == set(range(8, 14))
    assert "Successfully finished" in micro["first"].stdout


def test_data_directories(micro):
    data = micro["recipe"] / "data"
    sizes = {"train": SPEAKERS * (SENTENCES - VALID - TEST), "valid": SPEAKERS * VALID,
             "test": SPEAKERS * TEST}
    for name, size in sizes.items():
        keys = [line.split()[0] for line in _lines(data / name / "text")]
        assert len(keys) == size and keys == sorted(keys)
        for f in ("wav.scp", "video.scp", "landmark.scp", "utt2spk"):
            assert [line.split()[0] for line in _lines(data / name / f)] == keys, (name, f)
        raw = micro["recipe"] / "dump" / "raw" / name
        assert [line.split()[0] for line in _lines(raw / "text")] == keys
        assert (raw / "utt2dur").is_file() and (raw / "video.scp").is_file()
    for noisy in NOISY:
        assert len(_lines(micro["recipe"] / "dump" / "raw" / noisy / "wav.scp")) == sizes["test"]
    assert len(_lines(data / "token_list" / "bpe_unigram50" / "tokens.txt")) > 3


def test_stage_markers(micro):
    recipe, exp = micro["recipe"], micro["exp"]
    markers = [recipe / "data" / ".done.stage1", recipe / "data/token_list/bpe_unigram50/.done",
               recipe / "dump/noise/.done", recipe / "exp/asr_stats_av_bpe50/.done",
               exp / "mask_search/.done", exp / "train/.done", exp / "train/.done.average",
               exp / DECODE / ".done.score", exp / "packed/.done"]
    for name in ("train", "valid", "test"):
        markers += [recipe / "dump/prep" / name / ".done", recipe / "dump/raw/org" / name / ".done",
                    recipe / "dump/raw" / name / ".done"]
    markers += [exp / DECODE / s / ".done" for s in ("test",) + NOISY]
    for marker in markers:
        assert marker.is_file() and marker.read_text().strip(), marker


def test_mask_search_artifacts(micro):
    search = micro["exp"] / "mask_search"
    mask = torch.load(search / "mask.pth", weights_only=True)
    masks = mask["masks"]
    assert masks and all(((m == 0) | (m == 1)).all() for m in masks.values())
    init = torch.load(search / "init.pth", weights_only=True)
    for name, m in masks.items():  # θ_j ⊙ m*: zero wherever the mask is zero
        assert (init[name][m == 0] == 0).all(), name
    report = json.loads((search / "sparsity_report.json").read_text())
    assert report["search"]["stop_reason"] == "max_epoch"  # one epoch < min_search_epochs
    log = (search / "train.log").read_text()
    assert "1epoch results:" in log and "mask_penalty=" in log and "sparsity=" in log


def test_retraining_averaging_and_decoding(micro):
    exp = micro["exp"]
    assert "1epoch results:" in (exp / "train" / "train.log").read_text()
    model = torch.load(exp / "train" / "valid.acc.ave.pth", weights_only=True)
    mask = torch.load(exp / "mask_search" / "mask.pth", weights_only=True)["masks"]
    for name, m in mask.items():  # sparse retraining keeps the zeros
        assert (model[name][m == 0] == 0).all(), name
    config = yaml.safe_load((exp / "train" / "config.yaml").read_text())
    assert config["msrs_conf"]["mode"] == "sparse"
    # training noise: stage 6's babble, given by avsr.sh (the demo configs name none)
    for stage, phase in ((8, "mask_search"), (9, "train")):
        config = yaml.safe_load((exp / phase / "config.yaml").read_text())
        assert config["preprocessor_conf"]["babble_path"] == "dump/noise/babble_train.wav"
        assert (f"Stage {stage}: training noise: dump/noise/babble_train.wav (synthetic babble, "
                "stage 6)") in micro["first"].stdout
    test_keys = [line.split()[0] for line in _lines(micro["recipe"] / "dump/raw/test/text")]
    for name in ("test",) + NOISY:
        hyp = _lines(exp / DECODE / name / "text")
        assert [line.split()[0] for line in hyp] == test_keys, name


def test_results_and_packed_model(micro):
    results = (micro["exp"] / "RESULTS.md").read_text()
    for name in ("test",) + NOISY:
        row = re.search(rf"^\| {TAG} \| {re.escape(name)} \| {SPEAKERS * TEST} \| \d+ \| "
                        r"[0-9.]+ \|", results, re.M)
        assert row, name
    assert TAG in (micro["recipe"] / "RESULTS.md").read_text()
    n = SPEAKERS * TEST
    assert f"| test | – | {n} | {n} | {n} | none |  |" in results  # nothing dropped
    assert "- training augmentation: synthetic babble: 4 utterances of dump/raw/train/wav.scp" \
        in results
    with zipfile.ZipFile(micro["exp"] / "packed" / "model.zip") as z:
        names = z.namelist()
    assert "meta.yaml" in names
    assert any(n.endswith("config.yaml") for n in names)
    assert any(n.endswith(".pth") for n in names) and any(n.endswith("bpe.model") for n in names)
    check = json.loads((micro["exp"] / "packed" / "check.json").read_text())
    assert check["ok"] is True and check["match"] is True


def test_second_run_redoes_nothing(micro):
    out = micro["second"].stdout
    stages = _STAGE_LINE.findall(out)
    assert {int(n) for n, _ in stages} == set(range(1, 14))
    redone = [(n, what) for n, what in stages if "done already" not in what]
    assert redone == []
    assert "Successfully finished" in out


# ----------------------------------------------- faults and changed inputs
# (after the runs above; each redoes only what it must)
def _stage_lines(proc):
    return [(int(n), what) for n, what in _STAGE_LINE.findall(proc.stdout)]


def test_search_on_a_fraction_of_the_data_with_amp(micro):
    """The 703 M route: the mask search on a deterministic 50 % with ESPnet's AMP flag."""
    from espnet_msrs.utils.data_dir import read_kv, select_fraction

    proc = run_recipe(micro["recipe"], "--stage", "8", "--stop_stage", "8", "--tag", "frac",
                      "--search_data_fraction", "0.5", "--search_data_seed", "3",
                      "--asr_args", "--max_epoch 1 --use_amp true")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    search = micro["recipe"] / "exp" / "frac" / "mask_search"
    train = list(read_kv(micro["recipe"] / "dump/raw/train/text"))
    subset = list(read_kv(search / "data/train/text"))
    assert subset == select_fraction(train, 0.5, 3) and len(subset) == len(train) // 2
    assert list(read_kv(search / "data/train/speech_shape")) == subset
    log = (search / "train.log").read_text()
    assert f"--train_shape_file {search.relative_to(micro['recipe'])}/data/train/speech_shape" in log
    assert yaml.safe_load((search / "config.yaml").read_text())["use_amp"] is True
    assert torch.load(search / "mask.pth", weights_only=True)["masks"]


def test_a_truncated_init_is_not_trusted(micro):
    search = micro["recipe"] / "exp" / "frac" / "mask_search"
    init = search / "init.pth"
    init.write_bytes(init.read_bytes()[: init.stat().st_size // 2])
    opts = ("--stage", "8", "--stop_stage", "8", "--tag", "frac", "--search_data_fraction",
            "0.5", "--search_data_seed", "3", "--asr_args", "--max_epoch 1 --use_amp true")
    proc = run_recipe(micro["recipe"], *opts)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert ("exp/frac/mask_search/init.pth changed or is missing since "
            "exp/frac/mask_search/.done was written") in proc.stdout
    assert any(n == 8 and "done already" not in w for n, w in _stage_lines(proc))
    assert torch.load(init, weights_only=True)  # made again, whole
    again = run_recipe(micro["recipe"], *opts)
    assert [w for n, w in _stage_lines(again)] == ["MSRS mask search: done already (exp/frac/mask_search)"]


def test_new_decoding_options_or_a_new_model_decode_again(micro):
    exp = micro["exp"]
    hyp = exp / DECODE / "test" / "text"
    opts = ("--stage", "11", "--stop_stage", "11", "--snrs", "12.5",
            "--inference_args", "--beam_size 1")
    before = hyp.stat().st_mtime_ns
    first = run_recipe(micro["recipe"], *opts)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "Stage 11: decoding (2 jobs, av)" in first.stdout
    assert hyp.stat().st_mtime_ns > before
    outputs = sorted((exp / DECODE / "logdir" / "test").glob("output.*/1best_recog/text"))
    assert outputs and all(p.stat().st_mtime_ns >= hyp.stat().st_mtime_ns - 10**11 for p in outputs)
    same = run_recipe(micro["recipe"], *opts)
    assert "Stage 11: decoding test: done already" in same.stdout
    model = exp / "train" / "valid.acc.ave.pth"  # a link to the average
    state = torch.load(model, weights_only=True)
    torch.save({k: (v + 0.5 if v.is_floating_point() else v) for k, v in state.items()},
               model.resolve())
    changed = run_recipe(micro["recipe"], *opts)
    assert changed.returncode == 0, changed.stdout[-3000:] + changed.stderr[-3000:]
    assert "Stage 11: decoding (2 jobs, av)" in changed.stdout
    assert "done already" not in changed.stdout


def test_an_utterance_that_fails_to_load_at_decoding_is_left_out_and_counted(micro):
    """Stage 11 leaves out what cannot be decoded (decode_sets' bad_utts.txt),
    the merge accepts it, RESULTS.md counts it as dropped with the reason and
    the scorer counts its words as deleted."""
    recipe, exp = micro["recipe"], micro["exp"]
    uid, wav = _lines(recipe / "dump/raw/test/wav.scp")[0].split(maxsplit=1)
    (recipe / wav).write_bytes(b"RIFF-not-a-wav")
    proc = run_recipe(recipe, "--stage", "11", "--stop_stage", "12", "--snrs", "12.5",
                      "--inference_args", "--beam_size 2")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (f"Stage 11: test: 1 utterance(s) left out of decoding (unreadable or another "
            f"audio rate), listed in exp/{TAG}/{DECODE}/test/bad_utts.txt") in proc.stdout
    left = _lines(exp / DECODE / "test" / "bad_utts.txt")
    assert [line.split("\t")[0] for line in left] == [uid]
    hyps = [line.split()[0] for line in _lines(exp / DECODE / "test" / "text")]
    assert uid not in hyps and len(hyps) == SPEAKERS * TEST - 1
    result = json.loads((exp / DECODE / "test" / "score" / "result.json").read_text())
    assert result["missing_hyps"] == [uid]
    results = (exp / "RESULTS.md").read_text()
    row = next(r for r in results.splitlines() if r.startswith("| test | – |"))
    n = SPEAKERS * TEST
    assert row.startswith(f"| test | – | {n} | {n} | {n - 1} | decoding: 1 (")
    assert "counted as deleted" in row
    assert f"- `{uid}`: " in results
