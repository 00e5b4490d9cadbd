"""egs2/librispeech/asr1 stage 1 (local/data.sh) on a generated LibriSpeech
layout fixture."""

import re

import pytest
import soundfile

from espnet_msrs.utils.data_dir import read_report

from tests.recipe.fixtures import (
    LIBRI_SETS,
    make_librispeech,
    read_table,
    run_data_sh,
)

SETS = {
    "train_960": ("train-clean-100", "train-clean-360", "train-other-500"),
    "dev": ("dev-clean", "dev-other"),
    "dev_clean": ("dev-clean",),
    "dev_other": ("dev-other",),
    "test_clean": ("test-clean",),
    "test_other": ("test-other",),
}


@pytest.fixture(scope="module")
def libri(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("libri")
    corpus = make_librispeech(tmp)
    # a flac without transcript line and a transcript line without flac
    first = next(u for u in corpus["utts"] if u.subset == "dev-other")
    chapter = first.flac.parent
    extra = chapter / f"{chapter.parent.name}-{chapter.name}-0099.flac"
    soundfile.write(extra, [0.0] * 1600, 16000, format="FLAC")
    trans = chapter / f"{chapter.parent.name}-{chapter.name}.trans.txt"
    trans.write_text(trans.read_text() + f"{chapter.parent.name}-{chapter.name}-0042 GHOST\n")
    out = tmp / "recipe"
    proc = run_data_sh("librispeech", "asr1", {"LIBRISPEECH": corpus["root"]},
                       "--data_dir", out / "data", "--local_dir", out / "local")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {**corpus, "out": out, "extra": extra.stem,
            "ghost": f"{chapter.parent.name}-{chapter.name}-0042"}


@pytest.mark.parametrize("name", list(SETS))
def test_sets_ids_texts_and_flac_paths(libri, name):
    expected = {u.uid: u for u in libri["utts"] if u.subset in SETS[name]}
    ddir = libri["out"] / "data" / name
    assert read_table(ddir / "text") == {u: e.text for u, e in expected.items()}
    wavs = read_table(ddir / "wav.scp")
    assert wavs == {u: str(e.flac.resolve()) for u, e in expected.items()}
    for uid, path in wavs.items():
        assert soundfile.info(path).frames == expected[uid].num_samples
    utt2spk = read_table(ddir / "utt2spk")
    assert utt2spk == {u: u.rsplit("-", 1)[0] for u in expected}  # <spk>-<chapter>
    spk2utt = read_table(ddir / "spk2utt")
    assert sorted(u for v in spk2utt.values() for u in v.split()) == sorted(expected)
    assert not (ddir / "video.scp").exists()


def test_train_960_has_all_three_training_sets(libri):
    spk_sets = {u.subset for u in libri["utts"]
                if u.uid in read_table(libri["out"] / "data" / "train_960" / "text")}
    assert spk_sets == set(LIBRI_SETS[:3])


def test_mismatched_flac_and_transcripts_are_reported(libri):
    skipped = (libri["out"] / "local" / "skipped.txt").read_text()
    assert f"{libri['extra']}\t" in skipped and "no line in" in skipped
    assert f"{libri['ghost']}\t" in skipped and "transcript without" in skipped
    dev = read_table(libri["out"] / "data" / "dev" / "text")
    assert libri["extra"] not in dev and libri["ghost"] not in dev


def test_dropped_utterances_listed_per_data_directory(libri):
    dropped = read_report(libri["out"] / "data" / "dev" / "dropped.txt")
    assert set(dropped) == {libri["extra"], libri["ghost"]}
    assert "no line in" in dropped[libri["extra"]]
    assert read_report(libri["out"] / "data" / "test_clean" / "dropped.txt") == {}


def test_only_the_asked_subsets_are_needed(libri, tmp_path):
    """A corpus with train-clean-100, dev-clean and test-clean only."""
    root = tmp_path / "LibriSpeech"
    root.mkdir()
    for subset in ("train-clean-100", "dev-clean", "test-clean"):
        (root / subset).symlink_to(libri["root"] / subset)
    proc = run_data_sh("librispeech", "asr1", {"LIBRISPEECH": root},
                       "--train_subsets", "train-clean-100", "--train_name", "train_clean_100",
                       "--valid_subsets", "dev-clean", "--test_subsets", "test-clean",
                       "--data_dir", tmp_path / "data", "--local_dir", tmp_path / "local")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ids = set(read_table(tmp_path / "data" / "train_clean_100" / "text"))
    assert ids == {u.uid for u in libri["utts"] if u.subset == "train-clean-100"}
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == [
        "dev", "test_clean", "train_clean_100"]


@pytest.mark.parametrize("option, subsets, missing", [
    ("--test_subsets", "test-clean test-other", "test-other"),
    ("--valid_subsets", "dev-clean dev-other", "dev-other"),
    ("--train_subsets", "train-clean-100 train-other-500", "train-other-500"),
])
def test_a_missing_subset_is_named_with_its_option(libri, tmp_path, option, subsets, missing):
    root = tmp_path / "LibriSpeech"
    root.mkdir()
    for subset in ("train-clean-100", "dev-clean", "test-clean"):
        (root / subset).symlink_to(libri["root"] / subset)
    defaults = {"--train_subsets": "train-clean-100", "--valid_subsets": "dev-clean",
                "--test_subsets": "test-clean", option: subsets}
    args = [a for kv in defaults.items() for a in kv]
    proc = run_data_sh("librispeech", "asr1", {"LIBRISPEECH": root}, *args,
                       "--data_dir", tmp_path / "data", "--local_dir", tmp_path / "local")
    assert proc.returncode != 0
    remaining = " ".join(s for s in subsets.split() if s != missing)
    assert (f"LIBRISPEECH={root} lacks {missing} (asked for by {option} {subsets}): unpack it "
            f"there, fix LIBRISPEECH in db.sh, or leave it out: ./run.sh {option} "
            f"\"{remaining}\"") in proc.stdout + proc.stderr
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    "value, message",
    [
        (None, "LIBRISPEECH is not set: set LIBRISPEECH in .*db.sh"),
        ("/nonexistent/LibriSpeech",
         "LIBRISPEECH=/nonexistent/LibriSpeech is not a directory: fix LIBRISPEECH in db.sh"),
    ],
)
def test_wrong_corpus_path_names_db_variable(tmp_path, value, message):
    env = {} if value is None else {"LIBRISPEECH": value}
    proc = run_data_sh("librispeech", "asr1", env, "--data_dir", tmp_path / "data",
                       "--local_dir", tmp_path / "local")
    assert proc.returncode != 0
    assert re.search(message, proc.stdout + proc.stderr), proc.stdout + proc.stderr
    assert not (tmp_path / "data").exists()
