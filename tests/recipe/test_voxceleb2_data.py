"""egs2/voxceleb2/avsr1 stage 1 (local/data.sh) on a generated VoxCeleb2
layout fixture: English selection, labels CSV, automatic labels from a
packed ESPnet model (trained and packed here), db.sh errors."""

import contextlib
import csv
import math
import re
from pathlib import Path

import pytest
import soundfile

from espnet_msrs.data_prep.text import normalize_text
from espnet_msrs.utils.data_dir import combine_data_dirs

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
    # packed from the experiment's parent, as stage 13 does: meta.yaml then
    # names members relative to the archive (absolute paths are refused)
    with contextlib.chdir(work):
        pack_main(["asr", "--asr_train_config", "exp/config.yaml",
                   "--asr_model_file", "exp/valid.acc.best.pth",
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
        expected = normalize_text(model(speech=audio)[0][0])
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


@pytest.mark.parametrize("attack", ["payload", "outside"])
def test_automatic_labels_refuse_a_crafted_model(micro_zip, micro_exp, tmp_path, attack):
    """The labelling model is unpacked safely: a payload in its .pth never
    runs and a meta.yaml entry outside the archive is refused."""
    from espnet_msrs.utils.safe_load import UnsafeFileError
    from tests.helpers.micro_model import outside_path_zip, payload_zip

    transcribe = load_recipe_module("voxceleb2", "avsr1", "transcribe")
    bad, marker = tmp_path / "bad.zip", tmp_path / "payload_ran"
    if attack == "payload":
        payload_zip(micro_zip, bad, marker)
    else:
        outside_path_zip(micro_zip, bad, micro_exp["model"].resolve())
    expected = {"payload": "refusing to load", "outside": "points outside the packed model"}
    with pytest.raises(UnsafeFileError, match=expected[attack]):
        transcribe.load_model(str(bad), cache_dir=str(tmp_path / "cache"))
    assert not marker.exists()


def test_clip_list_errors(tmp_path):
    transcribe = load_recipe_module("voxceleb2", "avsr1", "transcribe")
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

    audio_only = tmp_path / "audio_only"
    audio_only.mkdir()
    for name in ("text", "utt2spk", "wav.scp"):
        (audio_only / name).write_text("zz_1 x\n")
    with pytest.raises(ValueError, match=r"video.scp exists in .* but not in .*audio_only"):
        combine_data_dirs([vox_train, audio_only], tmp_path / "bad")
    with pytest.raises(ValueError, match=r"utterance id .* is in both"):
        combine_data_dirs([vox_train, vox_train], tmp_path / "bad")


# ------------------------------------------- labels: format, text, sources
def _rows(path):
    return list(csv.reader(open(path, newline="")))


def test_auto_avsr_token_id_labels_are_refused_or_converted(vox, tmp_path):
    """Auto-AVSR labels files hold SentencePiece ids in the text column."""
    rows = _rows(vox["labels"])
    pieces = sorted({w for r in rows[1:] for w in r[3].upper().split()})
    units = tmp_path / "units.txt"  # Auto-AVSR's <piece> <id> unit list, ids from 1
    units.write_text("<unk> 1\n" + "".join(f"\u2581{w} {i}\n" for i, w in enumerate(pieces, 2)))
    ids = {w: i for i, w in enumerate(pieces, 2)}
    token_csv = tmp_path / "auto_avsr.csv"
    with open(token_csv, "w", newline="") as f:
        csv.writer(f).writerows(
            [rows[0]] + [r[:3] + [" ".join(str(ids[w]) for w in r[3].upper().split())]
                         for r in rows[1:]])
    env = {**vox["env"], "VOXCELEB2_LABELS": token_csv}
    args = ["--data_dir", tmp_path / "data", "--local_dir", tmp_path / "local", "--num_valid", 1]
    refused = run_data_sh("voxceleb2", "avsr1", env, *args)
    assert refused.returncode != 0
    assert (f"{token_csv}:2: the text column holds token ids" in refused.stdout + refused.stderr)
    assert "--labels_token_list" in refused.stdout + refused.stderr
    assert not (tmp_path / "data" / "train").exists()
    converted = run_data_sh("voxceleb2", "avsr1", env, *args, "--labels_token_list", units)
    assert converted.returncode == 0, converted.stdout + converted.stderr
    texts = {**read_table(tmp_path / "data/train/text"), **read_table(tmp_path / "data/valid/text")}
    assert texts == {**read_table(vox["data"] / "train/text"), **read_table(vox["data"] / "valid/text")}


def test_punctuation_never_reaches_the_transcripts(vox, tmp_path):
    prep = load_recipe_module("voxceleb2", "avsr1", "prepare_voxceleb2")
    rows = _rows(vox["labels"])
    labels = tmp_path / "labels.csv"
    with open(labels, "w", newline="") as f:  # "blue, now." and an unquoted comma
        f.write("dataset,rel_path,length,text\n")
        for r in rows[1:]:
            words = r[3].split()
            f.write(f"{r[0]},{r[1]},{r[2]},{words[0]}, {' '.join(words[1:])}.\n")
    labelled = prep.read_labels([str(labels)])
    expected = prep.read_labels([str(vox["labels"])])
    assert labelled == expected and all("," not in t and "." not in t for t in labelled.values())


def test_audio_from_aac_and_resampling_are_counted_and_listed(vox, tmp_path):
    """A clip whose mp4 has no audio stream takes dev/aac's m4a (here at 8 kHz)."""
    import av
    import numpy as np

    from tests.recipe.fixtures import noise_audio, render_face, write_av_mp4

    root = tmp_path / "VoxCeleb2"
    rel = Path("id00012/9Zz-0_abcDE/00001")
    frames, _ = render_face(np.random.default_rng(5), 20)
    write_av_mp4(root / "dev/mp4" / f"{rel}.mp4", frames, None)  # video only
    m4a = root / "dev/aac" / f"{rel}.m4a"
    m4a.parent.mkdir(parents=True)
    audio = noise_audio(np.random.default_rng(6), 6400)[::2]  # 0.8 s at 8 kHz
    with av.open(str(m4a), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=8000)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(audio[None].astype(np.float32), format="fltp",
                                           layout="mono")
        frame.sample_rate, frame.pts = 8000, 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    labels = tmp_path / "labels.csv"
    labels.write_text(f"vox2,dev/mp4/{rel}.mp4,20,hello there\n")
    prep = load_recipe_module("voxceleb2", "avsr1", "prepare_voxceleb2")
    assert prep.main(["--vox2", str(root), "--labels", str(labels), "--modality", "audio",
                      "--data_dir", str(tmp_path / "data"), "--num_valid", "0",
                      "--wav_dir", str(tmp_path / "wav"), "--report_dir", str(tmp_path / "rep")
                      ]) == 0
    uid = "id00012_9Zz-0_abcDE_00001"
    assert (tmp_path / "rep/audio_from_aac.txt").read_text() == f"{uid}\t{m4a}\n"
    assert (tmp_path / "rep/resampled.txt").read_text().startswith(f"{uid}\t8000 Hz: {m4a}")
    wav = read_table(tmp_path / "data/train/wav.scp")[uid]
    assert soundfile.info(wav).samplerate == 16000


def test_a_changed_labels_file_redoes_stage_1(vox, tmp_path):
    """Pointing VOXCELEB2_LABELS at another CSV (or editing it) redoes stage 1."""
    from tests.recipe.fixtures import recipe_sandbox, run_recipe

    recipe = recipe_sandbox("voxceleb2", "avsr1", tmp_path)
    opts = ["--stage", "1", "--stop_stage", "1", "--local_data_opts", "--num_valid 1 --nj 1"]
    env = {k: str(v) for k, v in vox["env"].items()}
    first = run_recipe(recipe, *opts, env=env)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    assert "Stage 1: data preparation: local/data.sh" in first.stdout
    again = run_recipe(recipe, *opts, env=env)
    assert "Stage 1: data preparation: done already" in again.stdout
    other = tmp_path / "other_labels.csv"
    rows = _rows(vox["labels"])
    with open(other, "w", newline="") as f:  # the same clips, other words
        csv.writer(f).writerows([rows[0]] + [r[:3] + ["set green now"] for r in rows[1:]])
    changed = run_recipe(recipe, *opts, env={**env, "VOXCELEB2_LABELS": str(other)})
    assert changed.returncode == 0, changed.stdout[-2000:] + changed.stderr[-2000:]
    assert "Stage 1: data preparation: local/data.sh" in changed.stdout
    texts = read_table(recipe / "data" / "train" / "text")
    assert texts and set(texts.values()) == {"SET GREEN NOW"}
    with open(other, "a", newline="") as f:  # edited in place: redone again
        f.write("vox2,dev/mp4/id00012/nothing/00001.mp4,10,more\n")
    edited = run_recipe(recipe, *opts, env={**env, "VOXCELEB2_LABELS": str(other)})
    assert "Stage 1: data preparation: local/data.sh" in edited.stdout
