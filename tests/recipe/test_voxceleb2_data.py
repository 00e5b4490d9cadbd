"""egs2/voxceleb2/avsr1 stage 1 (local/data.sh) on a generated VoxCeleb2
layout fixture: English selection, labels CSV, automatic labels from a
packed ESPnet model (trained and packed here), db.sh errors."""

import csv
import math
import re
from pathlib import Path

import pytest
import soundfile

from tests.recipe.fixtures import (
    HOP,
    REPO,
    load_recipe_module,
    make_voxceleb2,
    read_table,
    run_data_sh,
)


@pytest.fixture(scope="module")
def vox(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("vox2")
    corpus = make_voxceleb2(tmp)
    out = tmp / "recipe"
    args = ["--data_dir", out / "data", "--local_dir", out / "data/local/vox2",
            "--num_valid", 1, "--nj", 2]
    env = {"VOXCELEB2": corpus["root"], "VOXCELEB2_EN_IDS": corpus["id_list"],
           "VOXCELEB2_LABELS": corpus["labels"], "VOXCELEB2_LANDMARKS": corpus["landmarks"]}
    proc = run_data_sh("voxceleb2", "avsr1", env, *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {**corpus, "tmp": tmp, "out": out, "data": out / "data", "env": env}


def test_english_clips_with_label_texts(vox):
    clips = {c.uid: c for c in vox["clips"]}
    train = read_table(vox["data"] / "train" / "text")
    valid = read_table(vox["data"] / "valid" / "text")
    assert len(valid) == 1 and not set(train) & set(valid)
    assert set(train) | set(valid) == set(vox["english"])  # id09999 is not English
    for uid, text in {**train, **valid}.items():
        assert text == clips[uid].text  # labels are lower case in the CSV
    for name in ("train", "valid"):
        ddir = vox["data"] / name
        utt2spk = read_table(ddir / "utt2spk")
        assert all(spk == clips[u].spk and u.startswith(spk) for u, spk in utt2spk.items())
        videos = read_table(ddir / "video.scp")
        landmarks = read_table(ddir / "landmark.scp")
        for uid, wav in read_table(ddir / "wav.scp").items():
            clip = clips[uid]
            assert Path(videos[uid]) == clip.mp4.resolve()
            assert Path(landmarks[uid]) == clip.landmark
            info = soundfile.info(wav)
            assert info.samplerate == 16000
            assert abs(info.frames - clip.num_frames * HOP) <= 1024
            assert wav.endswith(f"{clip.spk}/{clip.mp4.parent.name}/{clip.mp4.stem}.wav")


def test_stage2_mouth_roi_from_landmark_tree(vox, tmp_path):
    from espnet_msrs.bin import crop_mouth
    from espnet_msrs.video.io import read_video, video_info

    ddir = vox["data"] / "train"
    assert crop_mouth.main([
        "--video_scp", str(ddir / "video.scp"), "--landmark_scp", str(ddir / "landmark.scp"),
        "--out_dir", str(tmp_path / "roi"), "--out_scp", str(tmp_path / "roi.scp"),
        "--nj", "1", "--log_level", "WARNING"]) == 0
    videos = read_table(ddir / "video.scp")
    rois = read_table(tmp_path / "roi.scp")
    assert set(rois) == set(videos)
    for uid, path in rois.items():
        assert read_video(path).shape == (video_info(videos[uid])["num_frames"], 96, 96)


def test_id_list_forms_missing_entries_and_unlabelled(vox, tmp_path):
    prep = load_recipe_module("voxceleb2", "avsr1", "prepare_voxceleb2")
    en = vox["english"]
    ids = tmp_path / "ids"
    # a speaker, a clip with the dev/mp4 prefix and .mp4, a missing clip
    ids.write_text("id00012\ndev/mp4/id00419/1Yx-1_abcDE/00001.mp4\nid00419/nope/00009\n")
    labels = tmp_path / "labels.csv"
    rows = list(csv.reader(open(vox["labels"])))
    with open(labels, "w", newline="") as f:  # no header, one clip unlabelled
        csv.writer(f).writerows(r for r in rows[1:] if "0Yx-1" not in r[1])
    assert prep.main([
        "--vox2", str(vox["root"]), "--id_list", str(ids), "--labels", str(labels),
        "--data_dir", str(tmp_path / "data"), "--modality", "audio", "--num_valid", "0",
        "--wav_dir", str(vox["out"] / "data/local/vox2/wav"),
        "--report_dir", str(tmp_path / "rep"), "--log_level", "WARNING",
    ]) == 0
    selected = {u for u in en if u.startswith("id00012") or "1Yx-1" in u}
    unlabelled = [u for u in selected if "0Yx-1" in u]
    assert set(read_table(tmp_path / "data" / "train" / "text")) == selected - set(unlabelled)
    lines = (tmp_path / "rep" / "unlabelled.tsv").read_text().splitlines()
    assert [line.split("\t")[:2] for line in lines] == [
        [unlabelled[0], "dev/mp4/id00012/0Yx-1_abcDE/00001.mp4"]]
    assert "id00419/nope/00009\tno clip id00419/nope/00009" in (
        tmp_path / "rep" / "skipped.txt").read_text()
    assert not (tmp_path / "data" / "train" / "video.scp").exists()


@pytest.mark.parametrize(
    "env, message",
    [
        ({}, "VOXCELEB2 is not set: set VOXCELEB2 in .*db.sh"),
        ({"VOXCELEB2": "/nonexistent/vox2", "VOXCELEB2_LABELS": "x.csv"},
         "VOXCELEB2=/nonexistent/vox2 is not a directory: fix VOXCELEB2 in db.sh"),
        ({"VOXCELEB2": "ROOT"}, "set VOXCELEB2_LABELS in .*db.sh .* or give --asr_model"),
        ({"VOXCELEB2": "ROOT", "VOXCELEB2_LABELS": "x.csv", "VOXCELEB2_EN_IDS": "/no/ids"},
         "VOXCELEB2_EN_IDS=/no/ids is not a file: fix VOXCELEB2_EN_IDS in db.sh"),
    ],
)
def test_wrong_paths_name_db_variable(vox, tmp_path, env, message):
    env = {k: (str(vox["root"]) if v == "ROOT" else v) for k, v in env.items()}
    if env.get("VOXCELEB2_LABELS") == "x.csv":
        env["VOXCELEB2_LABELS"] = str(vox["labels"])
    proc = run_data_sh("voxceleb2", "avsr1", env, "--data_dir", tmp_path / "data",
                       "--local_dir", tmp_path / "local")
    assert proc.returncode != 0
    assert re.search(message, proc.stdout + proc.stderr), proc.stdout + proc.stderr
    assert not (tmp_path / "data" / "train").exists()


# ------------------------------------------------------- automatic labels
@pytest.fixture(scope="module")
def packed_model(vox):
    """A tiny audio ASR model trained (20 steps) on the fixture, then packed."""
    from espnet_msrs.register import register

    register()
    from espnet2.bin.pack import main as pack_main

    from espnet_msrs.asr.frontend.av_resnet_frontend import packed_dim
    from espnet_msrs.tasks.asr import MSRSASRTask

    work = vox["tmp"] / "asr"
    work.mkdir()
    ddir = vox["data"] / "train"
    texts = read_table(ddir / "text").values()
    chars = sorted(set("".join(texts).replace(" ", "")))
    tokens = work / "tokens.txt"
    tokens.write_text("\n".join(["<blank>", "<unk>", "<space>", *chars, "<sos/eos>"]) + "\n")
    dim = packed_dim("audio", 32, 640)
    shapes = work / "shape"
    shapes.write_text("".join(
        f"{uid} {math.ceil(soundfile.info(path).frames / 640)},{dim}\n"
        for uid, path in sorted(read_table(ddir / "wav.scp").items())))
    data = ["--train_data_path_and_name_and_type", f"{ddir}/wav.scp,speech,sound",
            "--train_data_path_and_name_and_type", f"{ddir}/text,text,text",
            "--valid_data_path_and_name_and_type", f"{ddir}/wav.scp,speech,sound",
            "--valid_data_path_and_name_and_type", f"{ddir}/text,text,text"]
    exp = work / "exp"
    MSRSASRTask.main(cmd=[
        "--config", str(REPO / "conf/tuning/train_asr_tiny.yaml"),
        "--output_dir", str(exp), "--token_list", str(tokens), "--token_type", "char",
        "--ngpu", "0", "--use_matplotlib", "false", *data,
        "--train_shape_file", str(shapes), "--valid_shape_file", str(shapes),
        "--max_epoch", "1", "--num_iters_per_epoch", "20",
        "--optim_conf", "lr=0.005", "--scheduler_conf", "max_lr=0.005",
        "--preprocessor_conf", "masks_per_second=0.0",
    ])
    zip_path = work / "model.zip"
    pack_main(["asr", "--asr_train_config", str(exp / "config.yaml"),
               "--asr_model_file", str(exp / "valid.acc.best.pth"),
               "--outpath", str(zip_path)])
    assert zip_path.is_file()
    return zip_path


def test_automatic_labels_from_packed_model(vox, packed_model, tmp_path):
    out = tmp_path / "recipe"
    local = out / "data/local/vox2"
    env = {k: v for k, v in vox["env"].items() if k != "VOXCELEB2_LABELS"}
    proc = run_data_sh(
        "voxceleb2", "avsr1", env, "--data_dir", out / "data", "--local_dir", local,
        "--num_valid", 0, "--nj", 1, "--modality", "audio", "--asr_model", packed_model,
        "--asr_opts", "--beam_size 2 --maxlenratio 0.5")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Stage 1.2: automatic labels" in proc.stdout

    # the labels CSV: one row per English clip, in prepare_voxceleb2's format
    with open(local / "auto_labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    clips = {c.uid: c for c in vox["clips"]}
    by_rel = {f"dev/mp4/{c.spk}/{c.mp4.parent.name}/{c.mp4.stem}.mp4": c for c in clips.values()}
    assert sorted(by_rel[r["rel_path"]].uid for r in rows) == sorted(vox["english"])
    assert all(r["dataset"] == "vox2" for r in rows)

    # the texts are what the packed model decodes (through espnet_model_zoo)
    transcribe = load_recipe_module("voxceleb2", "avsr1", "transcribe")
    model = transcribe.load_model(str(packed_model), cache_dir=str(tmp_path / "cache"),
                                  beam_size=2, maxlenratio=0.5)
    wavs = read_table(out / "data" / "train" / "wav.scp")
    labelled = {}
    for row in rows:
        clip = by_rel[row["rel_path"]]
        audio, _ = soundfile.read(local / "wav" / clip.spk / clip.mp4.parent.name
                                  / f"{clip.mp4.stem}.wav", dtype="float32")
        assert int(row["length"]) == math.ceil(len(audio) / HOP)
        expected = transcribe.normalize_hypothesis(model(speech=audio)[0][0])
        assert row["text"] == expected
        labelled[clip.uid] = expected
    assert any(labelled.values()), "the trained tiny model decodes nothing"
    train = read_table(out / "data" / "train" / "text")
    assert train == {u: t for u, t in labelled.items() if t}
    assert set(wavs) == set(train)
    skipped = (local / "skipped.txt").read_text()
    for uid, text in labelled.items():
        assert (f"{uid}\t" in skipped) == (not text)
    assert not (local / "unlabelled.tsv").read_text()


def test_hypothesis_normalisation_and_clip_list_errors(tmp_path):
    transcribe = load_recipe_module("voxceleb2", "avsr1", "transcribe")
    assert transcribe.normalize_hypothesis("it's 2 o'clock, ok? {NS} é") == "IT'S 2 O'CLOCK OK"
    (tmp_path / "clips.tsv").write_text("u1\tdev/mp4/a/b/00001.mp4\t\n")
    with pytest.raises(ValueError, match=r"clips.tsv:1: .*wav path"):
        transcribe.read_clips(str(tmp_path / "clips.tsv"))


def test_combine_with_lrs3_training_set(vox, tmp_path):
    from tests.recipe.fixtures import make_lrs3

    lrs3 = make_lrs3(tmp_path / "db", spk_per_subset=1, clips_per_spk=2, long_sec=1.0)
    vox_train = vox["data"] / "train"
    proc = run_data_sh(
        "lrs3", "avsr1", {"LRS3": lrs3["root"], "LRS3_LANDMARKS": lrs3["landmarks"]},
        "--data_dir", tmp_path / "data", "--local_dir", tmp_path / "local",
        "--num_valid", 1, "--extra_train_dirs", vox_train)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    combined = tmp_path / "data" / "train_lrs3_vox2"
    lrs3_train = read_table(tmp_path / "data" / "train" / "text")
    vox_text = read_table(vox_train / "text")
    assert read_table(combined / "text") == {**lrs3_train, **vox_text}
    for name in ("wav.scp", "video.scp", "landmark.scp", "utt2spk"):
        assert read_table(combined / name) == {
            **read_table(tmp_path / "data" / "train" / name), **read_table(vox_train / name)}
    spk2utt = read_table(combined / "spk2utt")
    assert sorted(u for v in spk2utt.values() for u in v.split()) == sorted(
        {**lrs3_train, **vox_text})

    combine = load_recipe_module("lrs3", "avsr1", "combine_data")
    audio_only = tmp_path / "audio_only"
    audio_only.mkdir()
    for name in ("text", "utt2spk", "wav.scp"):
        (audio_only / name).write_text("zz_1 x\n")
    with pytest.raises(ValueError, match=r"video.scp exists in .* but not in .*audio_only"):
        combine.combine([vox_train, audio_only], tmp_path / "bad")
    with pytest.raises(ValueError, match=r"utterance id .* is in both"):
        combine.combine([vox_train, vox_train], tmp_path / "bad")
