"""Tests of espnet_msrs.video.roi (mouth ROI) and the crop_mouth CLI."""

import logging
import pickle

import numpy as np
import pytest

from espnet_msrs.bin import crop_mouth as crop_cli
from espnet_msrs.synth.face import neutral_landmarks
from espnet_msrs.video.io import read_video, write_video
from espnet_msrs.video.roi import (
    MOUTH_POINTS,
    REFERENCE_68,
    crop_mouth,
    estimate_similarity,
    interpolate_missing,
    load_landmarks,
    smooth_landmarks,
)

MOUTH_REF = REFERENCE_68[list(MOUTH_POINTS)].mean(0)


def similarity(angle_deg: float, scale: float, shift):
    c, s = np.cos(np.deg2rad(angle_deg)), np.sin(np.deg2rad(angle_deg))
    return scale * np.array([[c, -s], [s, c]]), np.asarray(shift, dtype=float)


def blob_video(a, t, num_frames=3, size=(260, 250)):
    """Frames with a dark ellipse at the (transformed) reference mouth centre.

    The ellipse is 20 × 6 reference pixels (semi-axes), i.e. horizontal in
    the reference frame, so a correct crop shows it centred and horizontal.
    """
    h, w = size
    y, x = np.mgrid[0:h, 0:w].astype(float)
    p = np.stack([x, y], -1) @ np.linalg.inv(a).T - np.linalg.inv(a) @ t  # -> ref
    d = ((p[..., 0] - MOUTH_REF[0]) / 20.0) ** 2 + (
        (p[..., 1] - MOUTH_REF[1]) / 6.0
    ) ** 2
    frame = np.where(d <= 1.0, 20, 200).astype(np.uint8)
    landmarks = REFERENCE_68 @ a.T + t
    return np.repeat(frame[None], num_frames, 0), np.repeat(
        landmarks[None], num_frames, 0
    )


def dark_moments(crop):
    weight = (200.0 - crop.astype(float)).clip(0)
    y, x = np.mgrid[0 : crop.shape[0], 0 : crop.shape[1]]
    cx, cy = (weight * x).sum() / weight.sum(), (weight * y).sum() / weight.sum()
    var_x = (weight * (x - cx) ** 2).sum() / weight.sum()
    var_y = (weight * (y - cy) ** 2).sum() / weight.sum()
    return cx, cy, var_x, var_y


def test_reference_is_the_synthetic_neutral_face():
    assert REFERENCE_68.shape == (68, 2)
    assert np.abs(REFERENCE_68 - neutral_landmarks(256)).max() < 0.06
    # outer eye corners 100 px apart, mouth centre below the nose
    assert np.isclose(REFERENCE_68[45, 0] - REFERENCE_68[36, 0], 100.0)
    assert MOUTH_REF[1] > REFERENCE_68[33, 1] > REFERENCE_68[36, 1]


def test_estimate_similarity_recovers_a_known_transform():
    a, t = similarity(-17.0, 0.7, (12.0, -5.0))
    src = REFERENCE_68[[33, 36, 39, 42, 45]]
    a_hat, t_hat = estimate_similarity(src, src @ a.T + t)
    np.testing.assert_allclose(a_hat, a, atol=1e-9)
    np.testing.assert_allclose(t_hat, t, atol=1e-7)


@pytest.mark.parametrize(
    "angle, scale, shift",
    [(0.0, 1.0, (0, 0)), (25.0, 0.55, (30.0, -20.0)), (-12.0, 0.8, (-5.0, 15.0))],
)
def test_mouth_lands_at_the_crop_centre_upright(angle, scale, shift):
    a, t = similarity(angle, scale, shift)
    frames, landmarks = blob_video(a, t)
    out = crop_mouth(frames, landmarks, crop_size=96)
    assert out.shape == (3, 96, 96) and out.dtype == np.uint8
    cx, cy, var_x, var_y = dark_moments(out[1])
    assert abs(cx - 47.5) < 0.5 and abs(cy - 47.5) < 0.5
    # rotation and scale undone: horizontal, 20 px semi-axis (var = a^2 / 4)
    assert var_x > 5 * var_y
    assert abs(np.sqrt(4 * var_x) - 20.0) < 1.5


def test_missing_frames_are_interpolated():
    frames, _ = blob_video(*similarity(0.0, 0.7, (0.0, 0.0)), num_frames=5)
    moving = np.stack([REFERENCE_68 * 0.7 + [2.0 * k, 0.0] for k in range(5)])
    gapped = moving.copy()
    gapped[2] = np.nan  # no face in the middle frame
    gapped[0, 10] = np.nan  # one missing point invalidates a frame too
    # linear motion: the middle gap is recovered exactly, the leading gap
    # holds the first valid frame
    expected = moving[[1, 1, 2, 3, 4]]
    np.testing.assert_allclose(interpolate_missing(gapped), expected)
    out = crop_mouth(frames, gapped, smooth_window=1)
    assert np.array_equal(out, crop_mouth(frames, expected, smooth_window=1))


def test_all_missing_landmarks_raise_naming_the_file(tmp_path):
    path = tmp_path / "spk1_utt7.pkl"
    path.write_bytes(pickle.dumps([None] * 4))
    landmarks = load_landmarks(path)
    assert landmarks.shape == (4, 68, 2) and np.isnan(landmarks).all()
    with pytest.raises(ValueError, match="spk1_utt7.pkl"):
        crop_mouth(np.zeros((4, 64, 64), np.uint8), landmarks, path=path)


def test_smoothing_keeps_linear_motion_and_removes_jitter():
    base = np.stack([REFERENCE_68 + [k, 0.5 * k] for k in range(9)])
    np.testing.assert_allclose(smooth_landmarks(base, 5)[2:-2], base[2:-2])
    jitter = base + np.where(np.arange(9) % 2, 1.0, -1.0)[:, None, None]
    assert np.abs(smooth_landmarks(jitter, 5) - base)[2:-2].max() < 0.21


def test_load_landmarks_formats(tmp_path):
    lm = np.random.default_rng(0).uniform(0, 100, (4, 68, 2))
    np.save(tmp_path / "a.npy", lm)
    np.save(tmp_path / "b.npy", np.concatenate([lm, np.ones((4, 68, 1))], -1))
    np.savez(tmp_path / "c.npz", landmarks=lm)
    entries = [lm[0], None, lm[2][None], np.concatenate([lm[3], np.ones((68, 1))], 1)]
    (tmp_path / "d.pkl").write_bytes(pickle.dumps(entries))
    (tmp_path / "e.pkl").write_bytes(pickle.dumps({"landmarks": lm}))
    for name in ("a.npy", "b.npy", "c.npz", "e.pkl"):
        np.testing.assert_allclose(load_landmarks(tmp_path / name), lm)
    d = load_landmarks(tmp_path / "d.pkl")
    assert np.isnan(d[1]).all()
    np.testing.assert_allclose(d[[0, 2, 3]], lm[[0, 2, 3]])
    (tmp_path / "bad.pkl").write_bytes(pickle.dumps([np.zeros((5, 2))]))
    with pytest.raises(ValueError, match="bad.pkl.*frame 0"):
        load_landmarks(tmp_path / "bad.pkl")
    with pytest.raises(ValueError, match="missing.npy"):
        load_landmarks(tmp_path / "missing.npy")


def test_length_mismatch_beyond_tolerance_raises():
    frames, landmarks = blob_video(*similarity(0.0, 0.7, (0, 0)), num_frames=10)
    assert crop_mouth(frames, landmarks[:8]).shape == (10, 96, 96)  # within tolerance
    with pytest.raises(ValueError, match="landmark frames"):
        crop_mouth(frames, landmarks[:5], path="x.mp4")


def test_cli_crops_reports_failures_and_is_idempotent(tmp_path, caplog):
    a, t = similarity(8.0, 0.5, (4.0, 2.0))
    frames, landmarks = blob_video(a, t, num_frames=6, size=(128, 128))
    videos, marks = [], []
    for uid in ("u1", "u2", "u_nolm", "u_noface", "u_30fps"):
        write_video(tmp_path / f"{uid}.mp4", frames, fps=30 if "30" in uid else 25)
        videos.append(f"{uid} {tmp_path / (uid + '.mp4')}\n")
    for uid in ("u1", "u2", "u_30fps"):
        np.save(tmp_path / f"{uid}.npy", landmarks)
        marks.append(f"{uid} {tmp_path / (uid + '.npy')}\n")
    (tmp_path / "u_noface.pkl").write_bytes(pickle.dumps([None] * 6))
    marks.append(f"u_noface {tmp_path / 'u_noface.pkl'}\n")
    (tmp_path / "video.scp").write_text("".join(videos))
    (tmp_path / "landmark.scp").write_text("".join(marks))
    out = tmp_path / "roi"
    # fmt: off
    args = [
        "--video_scp", str(tmp_path / "video.scp"),
        "--landmark_scp", str(tmp_path / "landmark.scp"),
        "--out_dir", str(out),
        "--out_scp", str(out / "video.scp"),
        "--nj", "2",
    ]
    # fmt: on
    assert crop_cli.main(args) == 1  # failures and --allow_failures false
    failed = dict(
        line.split("\t") for line in (out / "failed.txt").read_text().splitlines()
    )
    assert sorted(failed) == ["u_30fps", "u_noface", "u_nolm"]
    assert "landmark scp" in failed["u_nolm"] and "u_noface" in failed["u_noface"]
    assert "frame rate 30" in failed["u_30fps"]
    scp = (out / "video.scp").read_text().splitlines()
    assert scp == [f"u1 {out / 'u1.mp4'}", f"u2 {out / 'u2.mp4'}"]
    roi = read_video(out / "u1.mp4")
    assert roi.shape == (6, 96, 96)
    cx, cy, _, _ = dark_moments(roi[3])
    assert abs(cx - 47.5) < 1.0 and abs(cy - 47.5) < 1.0

    before = {p: p.stat().st_mtime_ns for p in out.iterdir()}
    with caplog.at_level(logging.INFO):
        assert crop_cli.main(args + ["--allow_failures", "true"]) == 0
    assert {p: p.stat().st_mtime_ns for p in out.iterdir()} == before
    assert "written=0 skipped=2 failed=3" in caplog.text
