"""espnet_msrs.data_prep.video.crop_scp (stage 2 mouth ROIs, bin/crop_mouth):
crops follow their video, landmarks and options; utterances without
landmarks are warned about once, with the fix."""

import logging
import os

import numpy as np

from espnet_msrs.data_prep.video import NO_LANDMARKS, CropOptions, crop_scp
from espnet_msrs.utils.data_dir import read_kv, read_report
from espnet_msrs.video.io import read_video, write_video
from tests.recipe.fixtures import render_face


def _clip(tmp_path, name, seed, frames=12):
    video, landmarks = render_face(np.random.default_rng(seed), frames)
    write_video(tmp_path / f"{name}.mp4", video, fps=25)
    np.save(tmp_path / f"{name}.npy", landmarks.astype(np.float32))
    return tmp_path / f"{name}.mp4", tmp_path / f"{name}.npy"


def test_crops_follow_their_inputs_and_options(tmp_path):
    v1, l1 = _clip(tmp_path, "a", 0)
    v2, l2 = _clip(tmp_path, "b", 1)
    (tmp_path / "video.scp").write_text(f"s_1 {v1}\n")
    (tmp_path / "landmark.scp").write_text(f"s_1 {l1}\n")
    args = (tmp_path / "video.scp", tmp_path / "landmark.scp", tmp_path / "roi", tmp_path / "roi.scp")
    assert crop_scp(*args)["written"] == 1
    out = tmp_path / "roi" / "s_1.mp4"
    first, mtime = read_video(out), out.stat().st_mtime_ns
    assert first.shape == (12, 96, 96)
    assert crop_scp(*args) == {"written": 0, "kept": 1, "failed": 0, "no_landmarks": 0}
    assert out.stat().st_mtime_ns == mtime
    (tmp_path / "video.scp").write_text(f"s_1 {v2}\n")  # another video ...
    (tmp_path / "landmark.scp").write_text(f"s_1 {l2}\n")  # ... with its landmarks
    assert crop_scp(*args)["written"] == 1
    assert not np.array_equal(read_video(out), first)
    assert crop_scp(*args, options=CropOptions(crop_size=64))["written"] == 1  # new size
    assert read_video(out).shape == (12, 64, 64)
    np.save(l2, np.load(l2) + 1.0)  # the landmarks moved: cropped again
    os.utime(l2, ns=(1, 1))
    assert crop_scp(*args, options=CropOptions(crop_size=64))["written"] == 1


def test_missing_landmarks_warned_once_with_the_fix(tmp_path, caplog):
    v1, l1 = _clip(tmp_path, "a", 0)
    (tmp_path / "video.scp").write_text("".join(f"s_{i} {v1}\n" for i in range(4)))
    (tmp_path / "landmark.scp").write_text(f"s_0 {l1}\n")
    with caplog.at_level(logging.INFO, logger="espnet_msrs.data_prep.video"):
        counts = crop_scp(tmp_path / "video.scp", tmp_path / "landmark.scp", tmp_path / "roi",
                          tmp_path / "roi.scp", missing_landmarks_hint="set LRS3_LANDMARKS")
    assert counts == {"written": 1, "kept": 0, "failed": 3, "no_landmarks": 3}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"3 of 4 utterance(s) have no landmarks and are left out (e.g. s_1; listed in "
        f"{tmp_path / 'roi' / 'failed.txt'}): set LRS3_LANDMARKS"]
    assert read_report(tmp_path / "roi" / "failed.txt") == {
        f"s_{i}": NO_LANDMARKS for i in (1, 2, 3)}
    assert list(read_kv(tmp_path / "roi.scp")) == ["s_0"]
