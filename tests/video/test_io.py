"""Tests of espnet_msrs.video.io: mp4/npy/npz reading, atomic writing, errors."""

import os
from pathlib import Path

import av
import numpy as np
import pytest

from espnet_msrs.video import io as vio
from espnet_msrs.video.io import VideoReadError, read_video, video_info, write_video


def smooth_frames(num_frames: int = 20, size: int = 96) -> np.ndarray:
    """(T, size, size) uint8 smooth moving pattern (easy for the codec)."""
    t = np.arange(num_frames)[:, None, None]
    y = np.arange(size)[None, :, None]
    x = np.arange(size)[None, None, :]
    return (128 + 60 * np.sin(x / 15 + t / 5) * np.cos(y / 20)).astype(np.uint8)


@pytest.fixture
def mp4(tmp_path) -> Path:
    return write_video(tmp_path / "utt.mp4", smooth_frames())


def test_mp4_round_trip_is_frame_exact(tmp_path):
    frames = smooth_frames(23, 96)
    path = write_video(tmp_path / "a.mp4", frames)
    out = read_video(path)
    assert out.dtype == np.uint8
    assert out.shape == (23, 96, 96)
    diff = np.abs(out.astype(np.int32) - frames.astype(np.int32))
    assert diff.mean() < 3.0
    assert diff.max() < 20


def test_video_info_reads_metadata(mp4):
    assert video_info(mp4) == dict(num_frames=20, fps=25.0, height=96, width=96)


def test_fractional_fps(tmp_path):
    path = write_video(tmp_path / "ntsc.mp4", smooth_frames(6, 32), fps=29.97)
    info = video_info(path)
    assert info["num_frames"] == 6
    assert info["fps"] == pytest.approx(29.97, rel=1e-6)


def test_colour_mp4_is_read_as_grey(tmp_path):
    path = tmp_path / "colour.mp4"
    rgb = np.zeros((5, 32, 48, 3), dtype=np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 50
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv420p"
        for image in rgb:
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    out = read_video(path)
    assert out.shape == (5, 32, 48) and out.dtype == np.uint8
    luma = 0.299 * 200 + 0.587 * 100 + 0.114 * 50  # BT.601 ≈ 124
    assert abs(out.astype(np.float64).mean() - luma) < 4


def test_write_leaves_no_temp_file(tmp_path):
    write_video(tmp_path / "a.mp4", smooth_frames(4, 16))
    assert sorted(os.listdir(tmp_path)) == ["a.mp4"]


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    def broken_encode(path, frames, fps, crf):
        Path(path).write_bytes(b"half a video")
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(vio, "_encode_mp4", broken_encode)
    with pytest.raises(RuntimeError, match="simulated crash"):
        write_video(tmp_path / "a.mp4", smooth_frames(4, 16))
    assert os.listdir(tmp_path) == []


def test_write_checks_frame_count(tmp_path, monkeypatch):
    real_info = vio.video_info
    monkeypatch.setattr(
        vio, "video_info", lambda p: {**real_info(p), "num_frames": 3}
    )
    with pytest.raises(RuntimeError, match="wrote 3 frames instead of 4"):
        write_video(tmp_path / "a.mp4", smooth_frames(4, 16))
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("fraction", [0.3, 0.6, 0.95])
def test_truncated_mp4_names_uid_and_path(mp4, tmp_path, fraction):
    data = mp4.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(VideoReadError) as info:
        read_video(cut, uid="spk1_utt7")
    message = str(info.value)
    assert "spk1_utt7" in message and str(cut) in message
    assert info.value.uid == "spk1_utt7" and info.value.path == str(cut)
    assert isinstance(info.value, ValueError)


def test_corrupt_mp4_names_uid_and_path(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(np.random.default_rng(0).bytes(4000))
    with pytest.raises(VideoReadError, match="uid=u2") as info:
        read_video(bad, uid="u2")
    assert str(bad) in str(info.value)
    with pytest.raises(VideoReadError, match="uid=u2"):
        video_info(bad, uid="u2")


def test_missing_file_names_uid_and_path(tmp_path):
    missing = tmp_path / "nope.mp4"
    with pytest.raises(VideoReadError, match="no such file") as info:
        read_video(missing, uid="u3")
    assert "u3" in str(info.value) and str(missing) in str(info.value)


def test_npy_and_npz_reading(tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (7, 12, 10), dtype=np.uint8)
    np.save(tmp_path / "a.npy", frames)
    np.savez(tmp_path / "b.npz", video=frames, other=np.zeros(3))
    np.savez(tmp_path / "c.npz", arr_0=frames)
    for name in ("a.npy", "b.npz", "c.npz"):
        out = read_video(tmp_path / name)
        assert out.dtype == np.uint8
        np.testing.assert_array_equal(out, frames)
    info = video_info(tmp_path / "a.npy")
    assert info == dict(num_frames=7, fps=25.0, height=12, width=10)


def test_npy_npz_write_round_trip_is_exact(tmp_path):
    frames = np.random.default_rng(1).integers(0, 256, (3, 5, 7), dtype=np.uint8)
    for name in ("a.npy", "a.npz"):
        out = read_video(write_video(tmp_path / name, frames))
        np.testing.assert_array_equal(out, frames)


@pytest.mark.parametrize(
    "array, expected",
    [
        (np.zeros((4, 8, 8), dtype=np.float32), "dtype float32"),
        (np.zeros((4, 8, 8, 3), dtype=np.uint8), r"shape \(4, 8, 8, 3\)"),
        (np.zeros((0, 8, 8), dtype=np.uint8), r"shape \(0, 8, 8\)"),
    ],
)
def test_bad_npy_names_uid_and_path(tmp_path, array, expected):
    path = tmp_path / "bad.npy"
    np.save(path, array)
    with pytest.raises(VideoReadError, match=expected) as info:
        read_video(path, uid="u4")
    assert "uid=u4" in str(info.value) and str(path) in str(info.value)


def test_ambiguous_npz_is_an_error(tmp_path):
    path = tmp_path / "two.npz"
    np.savez(path, a=np.zeros((1, 2, 2), np.uint8), b=np.zeros((1, 2, 2), np.uint8))
    with pytest.raises(VideoReadError, match="'video' array or a single array"):
        read_video(path, uid="u5")


@pytest.mark.parametrize(
    "name, frames, expected",
    [
        ("a.mp4", np.zeros((2, 9, 8), np.uint8), "even height and width"),
        ("a.mp4", np.zeros((2, 8, 8), np.float32), "uint8"),
        ("a.mp4", np.zeros((8, 8), np.uint8), r"\(T, H, W\)"),
        ("a.avi", np.zeros((2, 8, 8), np.uint8), "unsupported suffix"),
    ],
)
def test_write_rejects_bad_input(tmp_path, name, frames, expected):
    with pytest.raises(ValueError, match=expected):
        write_video(tmp_path / name, frames)
    assert os.listdir(tmp_path) == []
