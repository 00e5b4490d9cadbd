"""egs2/lrs3/avsr1 stage 1 (local/data.sh) and stage 2's mouth ROI on a
generated LRS3 layout fixture; the offline landmark detector."""

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile

from espnet_msrs.bin import crop_mouth as crop_mouth_bin
from espnet_msrs.data_prep import face_landmarks as det
from espnet_msrs.data_prep.audio import extract_audio
from espnet_msrs.data_prep.video import NO_LANDMARKS
from espnet_msrs.video.io import read_video, video_info, write_video
from espnet_msrs.video.roi import crop_mouth, load_landmarks
from tests.recipe.fixtures import (
    HOP,
    REPO,
    load_recipe_module,
    make_lrs3,
    recipe_sandbox,
    read_table,
    render_face,
    run_data_sh,
    write_av_mp4,
)

MAX_SEC = 1.5
NUM_VALID = 2


@pytest.fixture(scope="module")
def lrs3(tmp_path_factory):
    """The fixture corpus and one run of local/data.sh on it."""
    tmp = tmp_path_factory.mktemp("lrs3")
    corpus = make_lrs3(tmp, with_problems=True, max_sec=MAX_SEC)
    out = tmp / "recipe"
    args = ["--data_dir", out / "data", "--local_dir", out / "data/local/lrs3",
            "--pretrain_max_sec", MAX_SEC, "--num_valid", NUM_VALID, "--nj", 2]
    env = {"LRS3": corpus["root"], "LRS3_LANDMARKS": corpus["landmarks"]}
    proc = run_data_sh("lrs3", "avsr1", env, *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {**corpus, "out": out, "data": out / "data", "args": args, "env": env,
            "log": proc.stdout + proc.stderr}


def _expected(lrs3):
    """uid -> (subset, text, num_frames, source clip, (f0, f1) or None)."""
    out = {}
    for clip in lrs3["clips"]:
        if clip.segments:
            for uid, text, f0, f1 in clip.segments:
                out[uid] = (clip.subset, text, f1 - f0, clip, (f0, f1))
        else:
            out[clip.uid] = (clip.subset, clip.text, clip.num_frames, clip, None)
    return out


def test_sets_ids_and_texts(lrs3):
    expected = _expected(lrs3)
    sets = {name: read_table(lrs3["data"] / name / "text") for name in ("train", "valid", "test")}
    assert set(sets["test"]) == {u for u, e in expected.items() if e[0] == "test"}
    trainval = {u for u, e in expected.items() if e[0] == "trainval"}
    assert len(sets["valid"]) == NUM_VALID and set(sets["valid"]) <= trainval
    assert set(sets["train"]) == (
        {u for u, e in expected.items() if e[0] == "pretrain"} | trainval
    ) - set(sets["valid"])
    long_clip = next(c for c in lrs3["clips"] if c.segments)
    assert long_clip.uid not in sets["train"] and len(long_clip.segments) == 3
    for name, texts in sets.items():
        for uid, text in texts.items():
            assert text == expected[uid][1], (name, uid)
        utt2spk = read_table(lrs3["data"] / name / "utt2spk")
        assert set(utt2spk) == set(texts)
        for uid, spk in utt2spk.items():
            assert spk == expected[uid][3].spk and uid.startswith(spk)
        spk2utt = read_table(lrs3["data"] / name / "spk2utt")
        assert sorted(u for v in spk2utt.values() for u in v.split()) == sorted(texts)
        # Kaldi files are sorted by key
        lines = (lrs3["data"] / name / "wav.scp").read_text().splitlines()
        assert lines == sorted(lines)


def test_media_paths_and_lengths(lrs3):
    expected = _expected(lrs3)
    for name in ("train", "valid", "test"):
        wavs = read_table(lrs3["data"] / name / "wav.scp")
        videos = read_table(lrs3["data"] / name / "video.scp")
        landmarks = read_table(lrs3["data"] / name / "landmark.scp")
        assert set(wavs) == set(videos)
        for uid, wav in wavs.items():
            subset, _, frames, clip, span = expected[uid]
            info = soundfile.info(wav)
            assert info.samplerate == 16000 and info.channels == 1
            if span is None:
                assert Path(videos[uid]) == clip.mp4.resolve()
                assert abs(info.frames - frames * HOP) <= 1024  # AAC padding
                if uid in landmarks:
                    assert Path(landmarks[uid]) == clip.landmark
            else:
                assert info.frames == frames * HOP
                assert video_info(videos[uid])["num_frames"] == frames
                lm = np.load(landmarks[uid])
                assert lm.shape == (frames, 68, 2) and lm.dtype == np.float32
            assert Path(wav).is_relative_to(lrs3["out"])


def test_segments_cut_audio_video_and_landmarks_consistently(lrs3):
    clip = next(c for c in lrs3["clips"] if c.segments)
    source_audio, _ = extract_audio(clip.mp4)
    source_lm = load_landmarks(clip.landmark)
    source_roi = crop_mouth(read_video(clip.mp4), source_lm)
    wavs = read_table(lrs3["data"] / "train" / "wav.scp")
    videos = read_table(lrs3["data"] / "train" / "video.scp")
    landmarks = read_table(lrs3["data"] / "train" / "landmark.scp")
    for uid, _, f0, f1 in clip.segments:
        audio, _ = soundfile.read(wavs[uid], dtype="float32")
        np.testing.assert_allclose(audio, source_audio[f0 * HOP : f1 * HOP], atol=1e-4)
        cut = np.load(landmarks[uid])
        np.testing.assert_array_equal(np.isnan(cut[:, 0, 0]), np.isnan(source_lm[f0:f1, 0, 0]))
        np.testing.assert_allclose(cut, source_lm[f0:f1], atol=1e-3)
        roi = crop_mouth(read_video(videos[uid]), cut)
        assert roi.shape == (f1 - f0, 96, 96)
        # re-encoded segment, landmark smoothing restarted at the cut
        assert np.abs(roi.astype(float) - source_roi[f0:f1]).mean() < 6.0


def test_problems_are_reported_not_dropped(lrs3):
    local = lrs3["data"] / "local" / "lrs3"
    text = (local / "skipped.txt").read_text()
    assert "tvBroken_50001\t" in text and "no transcript 50001.txt" in text
    assert "tvBroken_50002\t" in text and "empty transcript" in text
    todo = read_table(local / "landmark_todo.scp")
    assert set(todo) == set(lrs3["no_landmark"])
    assert "have no landmarks" in lrs3["log"]


def test_rerun_does_nothing(lrs3):
    files = sorted(p for p in lrs3["out"].rglob("*") if p.is_file())
    before = {p: p.stat().st_mtime_ns for p in files}
    proc = run_data_sh("lrs3", "avsr1", lrs3["env"], *lrs3["args"])
    assert proc.returncode == 0, proc.stderr
    after = {p: p.stat().st_mtime_ns for p in sorted(p for p in lrs3["out"].rglob("*") if p.is_file())}
    assert after == before


def test_stage2_mouth_roi_on_fixture(lrs3, tmp_path):
    test_dir = lrs3["data"] / "test"
    args = ["--video_scp", str(test_dir / "video.scp"),
            "--landmark_scp", str(test_dir / "landmark.scp"),
            "--out_dir", str(tmp_path / "roi"), "--out_scp", str(tmp_path / "roi.scp"),
            "--nj", "2"]
    assert crop_mouth_bin.main(args) == 1  # the clip without landmarks
    failed = (tmp_path / "roi" / "failed.txt").read_text()
    assert f"{lrs3['no_landmark'][0]}\t{NO_LANDMARKS}" in failed
    assert crop_mouth_bin.main(args + ["--allow_failures", "true"]) == 0
    rois = read_table(tmp_path / "roi.scp")
    videos = read_table(test_dir / "video.scp")
    assert set(rois) == set(videos) - set(lrs3["no_landmark"])
    for uid, path in rois.items():
        roi = read_video(path)
        assert roi.shape == (video_info(videos[uid])["num_frames"], 96, 96)


@pytest.mark.parametrize("modality", ["audio", "video"])
def test_modality_selects_files(lrs3, tmp_path, modality):
    prep = load_recipe_module("lrs3", "avsr1", "prepare_lrs3")
    status = prep.main([
        "--lrs3", str(lrs3["root"]), "--data_dir", str(tmp_path / "data"),
        "--modality", modality, "--train_subsets", "trainval",
        "--num_valid", "1", "--report_dir", str(tmp_path / "rep"),
        "--wav_dir", str(tmp_path / "wav"), "--seg_dir", str(tmp_path / "seg"),
        "--log_level", "WARNING",
    ])
    assert status == 0
    files = {p.name for p in (tmp_path / "data" / "train").iterdir()}
    if modality == "audio":
        assert files == {"wav.scp", "text", "utt2spk", "spk2utt", "dropped.txt"}
    else:  # no landmark tree given: an empty landmark.scp (stage 2 reports all)
        assert files == {"video.scp", "landmark.scp", "text", "utt2spk", "spk2utt",
                         "dropped.txt"}
        assert (tmp_path / "data" / "train" / "landmark.scp").read_text() == ""
        assert not (tmp_path / "wav").exists()
    ids = set(read_table(tmp_path / "data" / "train" / "text"))
    assert all(u.startswith("tr") for u in ids)  # trainval only


def test_valid_list_selects_validation_set(lrs3, tmp_path):
    prep = load_recipe_module("lrs3", "avsr1", "prepare_lrs3")
    trainval = [c for c in lrs3["clips"] if c.subset == "trainval"]
    chosen = trainval[1]
    (tmp_path / "valid.id").write_text(f"trainval/{chosen.spk}/{chosen.mp4.stem}\n")
    assert prep.main([
        "--lrs3", str(lrs3["root"]), "--data_dir", str(tmp_path / "data"),
        "--modality", "audio", "--train_subsets", "trainval",
        "--valid_list", str(tmp_path / "valid.id"), "--report_dir", str(tmp_path / "rep"),
        "--wav_dir", str(lrs3["out"] / "data/local/lrs3/wav"), "--log_level", "WARNING",
    ]) == 0
    assert set(read_table(tmp_path / "data" / "valid" / "text")) == {chosen.uid}
    assert chosen.uid not in read_table(tmp_path / "data" / "train" / "text")


def test_parse_txt_and_segment_rules(tmp_path):
    prep = load_recipe_module("lrs3", "avsr1", "prepare_lrs3")
    txt = tmp_path / "00001.txt"
    txt.write_text("Text:  HELLO {LG} world\nConf:  3\n\nWORD START END ASDSCORE\n"
                   "HELLO 0.10 0.50 5.0\n{LG} 0.60 2.90 1.0\nWORLD 3.00 3.40 6.1\n")
    parsed = prep.parse_lrs3_txt(txt)
    assert parsed.text == "HELLO WORLD"
    assert parsed.words == [("HELLO", 0.1, 0.5), ("{LG}", 0.6, 2.9), ("WORLD", 3.0, 3.4)]
    # a word longer than max_sec is a segment of its own; marker-only -> empty text
    assert prep.segment_words(parsed.words, 1.0) == [
        (0.1, 0.5, "HELLO"), (0.6, 2.9, ""), (3.0, 3.4, "WORLD")]
    assert prep.segment_words(parsed.words, 10.0) == [(0.1, 3.4, "HELLO WORLD")]
    txt.write_text("Text:  A B\n\nWORD START END ASDSCORE\nA 0.1 x 2\n")
    with pytest.raises(ValueError, match=r"00001.txt:4"):
        prep.parse_lrs3_txt(txt)
    txt.write_text("Conf:  3\n")
    with pytest.raises(ValueError, match="first line must start with 'Text:'"):
        prep.parse_lrs3_txt(txt)


@pytest.mark.parametrize(
    "value, message",
    [
        (None, "LRS3 is not set: set LRS3 in .*db.sh"),
        ("/nonexistent/LRS3", "LRS3=/nonexistent/LRS3 is not a directory: fix LRS3 in db.sh"),
        ("PARTIAL", "lacks test: fix LRS3 in db.sh"),
    ],
)
def test_wrong_corpus_path_names_db_variable(tmp_path, value, message):
    import re

    if value == "PARTIAL":
        for sub in ("pretrain", "trainval"):
            (tmp_path / sub).mkdir()
        value = str(tmp_path)
    env = {} if value is None else {"LRS3": value}
    proc = run_data_sh("lrs3", "avsr1", env, "--data_dir", tmp_path / "data",
                       "--local_dir", tmp_path / "local")
    assert proc.returncode != 0
    assert re.search(message, proc.stdout + proc.stderr), proc.stdout + proc.stderr
    assert not (tmp_path / "data" / "train").exists()


# ------------------------------------------------------------- detector
def test_mesh_mapping_is_68_distinct_mesh_points():
    assert len(det.MESH_TO_IBUG68) == 68 and len(set(det.MESH_TO_IBUG68)) == 68
    assert max(det.MESH_TO_IBUG68) < 468
    mesh = np.arange(478 * 3, dtype=float).reshape(478, 3)
    out = det.mesh_to_ibug68(mesh)
    assert out.shape == (68, 2)
    np.testing.assert_array_equal(out[33], mesh[2, :2])  # nose base = subnasale
    np.testing.assert_array_equal(out[[36, 45]], mesh[[33, 263], :2])  # outer eye corners
    with pytest.raises(ValueError, match="face mesh"):
        det.mesh_to_ibug68(np.zeros((68, 2)))


class _FakeDetector:
    """Face in even frames only, none at all in videos whose mean is dark."""

    def __init__(self):
        self.t = 0

    def __call__(self, rgb):
        self.t += 1
        if rgb.mean() < 5 or self.t % 2 == 0:
            return None
        return np.full((68, 2), float(self.t))


def test_detect_scp_reports_videos_without_face(tmp_path):
    rng = np.random.default_rng(0)
    frames, _ = render_face(rng, 6)
    face = write_av_mp4(tmp_path / "face.mp4", frames, None)
    dark = write_video(tmp_path / "dark.mp4", np.zeros((4, 32, 32), np.uint8))
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    scp, failed = det.detect_scp(
        {"a": str(face), "b": str(dark), "c": str(tmp_path / "broken.mp4")},
        tmp_path / "out", _FakeDetector)
    assert set(scp) == {"a", "b"}  # no-face video listed (stage 2 names it again)
    reasons = dict(failed)
    assert set(reasons) == {"b", "c"}
    assert "no face found in any of 4 frames" in reasons["b"]
    lm = np.load(scp["a"])
    assert lm.shape == (6, 68, 2)
    assert np.isnan(lm[1::2]).all() and not np.isnan(lm[0::2]).any()
    assert np.isnan(np.load(scp["b"])).all()


def _landmark_python():
    env = os.environ.get("MSRS_LANDMARK_ENV", str(REPO / ".venv_landmarks"))
    python = Path(env) / "bin" / "python"
    return python if python.is_file() else None


@pytest.mark.skipif(
    _landmark_python() is None,
    reason="no landmark environment (local/make_landmark_env.sh; MSRS_LANDMARK_ENV)",
)
def test_mediapipe_detector_finds_fixture_faces(lrs3, tmp_path):
    clips = [c for c in lrs3["clips"] if c.landmark and not c.segments][:2]
    dark = write_video(tmp_path / "dark.mp4", np.zeros((5, 64, 64), np.uint8))
    scp = tmp_path / "videos.scp"
    scp.write_text("".join(f"{c.uid} {c.mp4}\n" for c in clips) + f"zz_dark {dark}\n")
    proc = subprocess.run(
        [str(_landmark_python()), str(REPO / "espnet_msrs/bin/detect_landmarks.py"),
         "--video_scp", str(scp), "--out_dir", str(tmp_path / "lm"),
         "--out_scp", str(tmp_path / "lm.scp"), "--nj", "2"],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr  # the dark video has no face
    assert "zz_dark\t" in (tmp_path / "lm" / "failed.txt").read_text()
    found = read_table(tmp_path / "lm.scp")
    assert set(found) == {c.uid for c in clips} | {"zz_dark"}
    for clip in clips:
        detected, truth = load_landmarks(found[clip.uid]), load_landmarks(clip.landmark)
        ok = ~np.isnan(truth[:, 0, 0])
        iod = np.linalg.norm(truth[ok, 36] - truth[ok, 45], axis=1).mean()
        for points in ([33, 36, 39, 42, 45], list(range(48, 68))):
            err = np.linalg.norm(detected[ok][:, points] - truth[ok][:, points], axis=2)
            assert err.mean() / iod < 0.1, (clip.uid, points, err.mean() / iod)


# ------------------------------------------------------------ run.sh defaults
def _printing_recipe(tmp_path):
    """A sandbox of the LRS3 recipe whose avsr.sh only prints its arguments."""
    recipe = recipe_sandbox("lrs3", "avsr1", tmp_path)
    (recipe / "avsr.sh").unlink()
    (recipe / "avsr.sh").write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$@"\n')
    (recipe / "avsr.sh").chmod(0o755)
    return recipe


@pytest.mark.parametrize(
    "args, asr_config, search_config",
    [
        ([], "train_avsr_msrs_sparse.yaml", "train_avsr_msrs_search.yaml"),
        (["--modality", "video"], "train_vsr_large_msrs_sparse.yaml",
         "train_vsr_large_msrs_search.yaml"),
        (["--modality=video", "--retrain_mode", "dense"], "train_vsr_large_msrs_dense.yaml",
         "train_vsr_large_msrs_search.yaml"),
        (["--modality", "audio"], "train_asr_lr_sms_m010-020_f020-040.yaml", ""),
        (["--modality", "av", "--method", "lr_sms"],
         "train_avsr_lr_sms_m010-020_f020-040.yaml", ""),
        (["--modality", "video", "--method", "layerscale"], "train_vsr_large_layerscale.yaml", ""),
        (["--modality", "audio", "--method", "dense"], "train_asr.yaml", ""),
    ],
)
def test_run_sh_picks_paper_configs(tmp_path, args, asr_config, search_config):
    """run.sh (with avsr.sh replaced by an argument printer) chooses the
    config of --modality/--method/--retrain_mode and merges data options."""
    recipe = _printing_recipe(tmp_path)
    proc = subprocess.run(
        ["bash", str(recipe / "run.sh"), *args, "--local_data_opts", "--detector mediapipe"],
        capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    argv = proc.stdout.splitlines()

    def last(option):
        return argv[len(argv) - 1 - argv[::-1].index(option) + 1]

    assert last("--asr_config") == f"conf/tuning/{asr_config}"
    assert last("--search_config") == (f"conf/tuning/{search_config}" if search_config else "")
    assert (recipe / last("--asr_config")).is_file()
    modality = last("--modality")
    assert last("--local_data_opts") == (
        f"--modality {modality} --nj 4 --pretrain_max_sec 24 --detector mediapipe")
    assert argv.count("--local_data_opts") == 1
    assert argv[len(argv) - len(args):] == args  # the user's options come last


def test_run_sh_reports_missing_default_config(tmp_path):
    recipe = _printing_recipe(tmp_path)
    proc = subprocess.run(["bash", str(recipe / "run.sh"), "--modality", "audio",
                           "--method", "msrs"], capture_output=True, text=True, timeout=60)
    assert "no default search_config for --modality audio --method msrs" in proc.stderr
    assert "give --search_config" in proc.stderr


@pytest.mark.skipif(
    _landmark_python() is None,
    reason="no landmark environment (local/make_landmark_env.sh; MSRS_LANDMARK_ENV)",
)
def test_make_landmark_env_keeps_a_working_environment():
    env_dir = _landmark_python().parent.parent
    proc = subprocess.run(
        ["bash", str(REPO / "local/make_landmark_env.sh"), str(env_dir)],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "already present" in proc.stdout


@pytest.mark.parametrize("corpus, task", [("lrs3", "avsr1"), ("voxceleb2", "avsr1"),
                                          ("librispeech", "asr1")])
def test_data_sh_help_and_unknown_option(corpus, task):
    ok = run_data_sh(corpus, task, {}, "--help")
    assert ok.returncode == 0 and "Usage:" in ok.stdout and "--data_dir" in ok.stdout
    bad = run_data_sh(corpus, task, {}, "--no_such_option", "1")
    assert bad.returncode == 2 and "unknown option --no_such_option" in bad.stderr
