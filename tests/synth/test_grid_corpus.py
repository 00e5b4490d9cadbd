"""Tests of the synthetic GRID corpus: layout, determinism, visemes, CLI."""

import logging
import math

import numpy as np
import pytest
import soundfile as sf

from espnet_msrs.bin import make_synthgrid
from espnet_msrs.synth.face import (
    VISEMES,
    FaceAppearance,
    FaceRenderer,
    mouth_trajectory,
    neutral_landmarks,
)
from espnet_msrs.synth.grid_corpus import (
    SLOTS,
    GenerationConfig,
    generate_corpus,
    make_speakers,
    read_manifest,
    render_utterance,
    sample_sentences,
)
from espnet_msrs.synth.tts import Voice, synthesize
from espnet_msrs.video.io import read_video

TINY = [
    "--num_speakers",
    "2",
    "--utts_per_speaker",
    "3",
    "--frame_size",
    "96",
    "--nj",
    "1",
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthgrid")
    make_synthgrid.main(["--out", str(out), "--seed", "0"] + TINY)
    return out


def test_layout_and_consistent_lengths(corpus):
    rows = read_manifest(corpus / "manifest.tsv")
    assert len(rows) == 6
    assert sorted({r["speaker"] for r in rows}) == ["s01", "s02"]
    for row in rows:
        assert row["utt_id"] == f"{row['speaker']}_{row['wav'].split('/')[1][:-4]}"
        words = (corpus / row["text_file"]).read_text().split()
        assert " ".join(words) == row["text"]
        assert [
            w.lower() in [x.lower() for x in slot] for w, slot in zip(words, SLOTS)
        ] == [True] * 6
        audio, sr = sf.read(corpus / row["wav"], dtype="int16")
        assert sr == 22050 and audio.ndim == 1 and np.abs(audio).max() > 3000
        duration = len(audio) / sr
        frames = read_video(corpus / row["video"])
        landmarks = np.load(corpus / row["landmarks"])
        assert frames.shape[1:] == (96, 96)
        assert len(frames) == math.ceil(duration * 25) == int(row["num_frames"])
        assert abs(len(frames) / 25 - duration) < 1 / 25  # within one frame
        assert landmarks.shape == (len(frames), 68, 2)
        assert landmarks.dtype == np.float32 and np.isfinite(landmarks).all()
        assert (landmarks >= 0).all() and (landmarks < 96).all()


def test_same_seed_gives_identical_corpus(corpus, tmp_path):
    make_synthgrid.main(["--out", str(tmp_path), "--seed", "0"] + TINY)
    rows = read_manifest(corpus / "manifest.tsv")
    assert rows == read_manifest(tmp_path / "manifest.tsv")
    for row in rows:
        for key in ("wav", "text_file", "landmarks"):
            assert (corpus / row[key]).read_bytes() == (
                tmp_path / row[key]
            ).read_bytes()
        a = read_video(corpus / row["video"]).astype(np.int32)
        b = read_video(tmp_path / row["video"]).astype(np.int32)
        # Rendered frames are identical (next test), but multi-threaded
        # libx264 (video.io.write_video) codes noise slightly differently
        # from run to run: equal up to the coding error.
        assert a.shape == b.shape and np.abs(a - b).mean() < 2.0


def test_rendered_frames_are_deterministic():
    config = GenerationConfig(frame_size=96)
    speaker = make_speakers(1, seed=0)[0]
    sentence = sample_sentences(np.random.default_rng([0, 0, 0]), 1)[0]
    first = render_utterance(
        sentence, speaker, np.random.default_rng([0, 0, 0, 1]), config
    )
    again = render_utterance(
        sentence, speaker, np.random.default_rng([0, 0, 0, 1]), config
    )
    assert np.array_equal(first.frames, again.frames)
    assert np.array_equal(first.landmarks, again.landmarks)
    assert np.array_equal(first.audio, again.audio)
    other = render_utterance(
        sentence, speaker, np.random.default_rng([0, 0, 1, 1]), config
    )
    assert not np.array_equal(first.frames, other.frames)  # head motion, noise


def test_other_seed_gives_other_sentences():
    a = sample_sentences(np.random.default_rng([0, 0, 0]), 5)
    b = sample_sentences(np.random.default_rng([1, 0, 0]), 5)
    assert [s.text for s in a] != [s.text for s in b]
    # sequential sampling: growing a corpus keeps the existing sentences
    assert sample_sentences(np.random.default_rng([0, 0, 0]), 3) == a[:3]
    assert len({s.code for s in sample_sentences(np.random.default_rng(0), 200)}) == 200


def test_second_run_does_nothing(corpus, caplog):
    before = {p: p.stat().st_mtime_ns for p in corpus.rglob("*") if p.is_file()}
    with caplog.at_level(logging.INFO):
        make_synthgrid.main(["--out", str(corpus), "--seed", "0"] + TINY)
    after = {p: p.stat().st_mtime_ns for p in corpus.rglob("*") if p.is_file()}
    assert before == after
    assert "generated=0 skipped=6" in caplog.text


def test_changed_content_settings_are_refused(corpus):
    with pytest.raises(ValueError, match="seed"):
        generate_corpus(
            corpus, GenerationConfig(num_speakers=2, utts_per_speaker=3, seed=1)
        )


def _mouth_frames(word: str, renderer: FaceRenderer):
    syn = synthesize(word, Voice("en-us+m3", rate=170))
    num = math.ceil(syn.duration * 25)
    frames, landmarks = renderer.render(mouth_trajectory(syn.phonemes, num))
    centre = np.round(landmarks[:, 48:68].mean(1).mean(0)).astype(int)
    return frames[
        :, centre[1] - 20 : centre[1] + 20, centre[0] - 28 : centre[0] + 28
    ].astype(float)


@pytest.mark.parametrize(
    "slot",
    [
        ("blue", "green", "red", "white"),
        ("bin", "lay", "place", "set"),
        ("again", "now", "please", "soon"),
    ],
)
def test_different_words_give_different_mouth_frames(slot):
    renderer = FaceRenderer(FaceAppearance(), 128)
    clips = {w: _mouth_frames(w, renderer) for w in slot}
    assert np.array_equal(clips[slot[0]], _mouth_frames(slot[0], renderer))
    for i, a in enumerate(slot):
        # the mouth moves within each word
        assert np.abs(np.diff(clips[a], axis=0)).mean() > 0.5, a
        for b in slot[i + 1 :]:
            n = min(len(clips[a]), len(clips[b]))
            per_frame = np.abs(clips[a][:n] - clips[b][:n]).mean(axis=(1, 2))
            # at some point the two mouths look clearly different
            assert per_frame.max() > 3.0, (a, b, per_frame)


def test_landmarks_follow_the_drawn_mouth_under_head_motion():
    renderer = FaceRenderer(FaceAppearance(skin=180.0), 160)
    mouth = np.stack([VISEMES["rest"].as_array(), VISEMES["open"].as_array()] * 2)
    pose = np.array(
        [[0, 0, 0, 0], [0, 0, 0, 0], [0.12, 5.0, -3.0, 0.03], [0.12, 5.0, -3.0, 0.03]]
    )
    frames, lm = renderer.render(mouth, pose)
    for t in (1, 3):  # open mouth: the inner-lip centre is dark
        inner = lm[t, [62, 66]].mean(0)
        assert frames[t, int(round(inner[1])), int(round(inner[0]))] < 60
    for t in (0, 2):  # closed mouth: lips, not skin and not the dark opening
        centre = lm[t, [51, 57]].mean(0)
        value = frames[t, int(round(centre[1])), int(round(centre[0]))]
        assert 60 < value < 150
    eye = lm[2, 36:42].mean(0)  # iris under the rotated eye landmarks
    assert frames[2, int(round(eye[1])), int(round(eye[0]))] < 80
    # the landmarks moved with the head
    assert np.abs(lm[2, :48] - lm[0, :48]).max() > 4.0


def test_viseme_table_covers_the_grid_vocabulary(caplog):
    words = [w for slot in SLOTS[:3] + SLOTS[4:] for w in slot] + [
        "eigh",
        "Q",
        "Y",
        "R",
        "H",
    ]
    with caplog.at_level(logging.DEBUG, logger="espnet_msrs.synth.face"):
        syn = synthesize(" ".join(words), Voice("en-us"))
        mouth_trajectory(syn.phonemes, math.ceil(syn.duration * 25))
    assert "has no viseme" not in caplog.text
    assert neutral_landmarks().shape == (68, 2)
