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


def _face_like_clip(size=160, frames=50, noise=1.5):
    """A bright still background, a mouth-like blob that opens and closes, and
    pixel noise (what the synthetic corpus renders)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size]
    out = []
    for t in range(frames):
        img = np.full((size, size), 200.0)
        r = np.hypot(xx - size / 2, (yy - size * 0.6) * (2 + np.sin(t / 3)))
        img[r < size / 6] = 60
        img += rng.normal(0, noise, img.shape)
        out.append(img.clip(0, 255).astype(np.uint8))
    return np.stack(out)


def test_mp4_encoding_is_byte_deterministic(tmp_path):
    """The same frames give the same file, whatever the process did before
    (libx264's macroblock tree made 4 of 6 such encodes differ)."""
    frames = _face_like_clip()
    digests = set()
    for k in range(6):
        ballast = np.random.default_rng(k).random(100_000 * (k + 1))  # noqa: F841
        path = tmp_path / f"clip{k}.mp4"
        write_video(path, frames, fps=25)
        digests.add(path.read_bytes())
    assert len(digests) == 1


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


# ------------------------------------------------ the luma-plane fast path
def swscale_grey(path: Path) -> np.ndarray:
    """The reference decode: every frame converted to gray by swscale."""
    with av.open(str(path)) as container:
        return np.stack(
            [frame.to_ndarray(format="gray") for frame in container.decode(video=0)]
        )


def every_luma_value(size: int = 32) -> np.ndarray:
    """(size, size) uint8 image holding every value 0..255 (size² ≥ 256)."""
    return np.resize(np.arange(256, dtype=np.uint8), (size, size))


def encode(path: Path, planes: np.ndarray, codec: str, pix_fmt: str,
           color_range: int = 0) -> Path:
    """Encode (T, H, W) Y planes as ``pix_fmt`` (chroma neutral) with ``codec``."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height = planes.shape[2], planes.shape[1]
        stream.pix_fmt = pix_fmt
        if codec == "libx264":
            stream.options = {"crf": "0", "threads": "1"}
        stream.codec_context.color_range = color_range
        for i, y in enumerate(planes):
            frame = av.VideoFrame(y.shape[1], y.shape[0], pix_fmt)
            frame.planes[0].update(_padded(y, frame.planes[0].line_size))
            for plane in frame.planes[1:]:
                plane.update(bytes([128]) * plane.buffer_size)
            frame.color_range = color_range
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def _padded(y: np.ndarray, line_size: int) -> bytes:
    rows = np.zeros((y.shape[0], line_size), np.uint8)
    rows[:, : y.shape[1]] = y
    return rows.tobytes()


def test_limited_to_full_lut_is_swscales_fixed_point_formula():
    y = np.arange(256, dtype=np.int64)
    intermediate = (np.minimum(y << 7, 30189) * 19077 - 39057361) >> 14
    expected = np.clip((intermediate + 64) >> 7, 0, 255)
    np.testing.assert_array_equal(vio.LIMITED_TO_FULL_LUMA, expected)
    assert vio.LIMITED_TO_FULL_LUMA[16] == 0 and vio.LIMITED_TO_FULL_LUMA[235] == 255
    assert vio.LIMITED_TO_FULL_LUMA.dtype == np.uint8


@pytest.mark.parametrize("color_range", [0, 1, 2])
@pytest.mark.parametrize("pix_fmt", sorted(vio.LUMA_PLANE_FORMATS))
def test_luma_plane_equals_swscale_for_every_value(pix_fmt, color_range):
    # Every 8-bit value in every fast-path format and range flag
    # (unspecified, limited "tv", full "pc").
    y = every_luma_value()
    frame = av.VideoFrame(32, 32, pix_fmt)
    frame.planes[0].update(_padded(y, frame.planes[0].line_size))
    for plane in frame.planes[1:]:
        plane.update(bytes([128]) * plane.buffer_size)
    frame.color_range = color_range
    image, limited = vio._grey_plane(frame)
    if limited:
        image = vio.LIMITED_TO_FULL_LUMA[image]
    np.testing.assert_array_equal(image, frame.to_ndarray(format="gray"))


def test_project_mp4_equals_swscale_bit_for_bit(tmp_path):
    rng = np.random.default_rng(3)
    frames = smooth_frames(30, 96)
    frames[10:20] = rng.integers(0, 256, (10, 96, 96), dtype=np.uint8)  # 0..255
    path = write_video(tmp_path / "roi.mp4", frames)
    out = read_video(path)
    reference = swscale_grey(path)
    assert out.dtype == np.uint8 and out.shape == (30, 96, 96)
    np.testing.assert_array_equal(out, reference)
    assert out.min() == 0 and out.max() == 255  # the range expansion was needed


@pytest.mark.parametrize(
    "codec, pix_fmt, color_range, decoded_as, expect_lut",
    [
        ("libx264", "yuv420p", 0, "yuv420p", True),  # unspecified range: limited
        ("libx264", "yuv420p", 1, "yuv420p", True),  # limited ("tv")
        ("libx264", "yuv420p", 2, "yuvj420p", False),  # full range ("pc") flag
        ("libx264", "yuvj420p", 0, "yuvj420p", False),  # full range by format
        ("libx264", "yuv444p", 0, "yuv444p", True),
        ("ffv1", "gray", 0, "gray", False),
    ],
)
def test_coded_formats_equal_swscale_bit_for_bit(
    tmp_path, codec, pix_fmt, color_range, decoded_as, expect_lut
):
    # Y planes with every value, including the foot- and headroom < 16, > 235.
    planes = np.stack([np.roll(every_luma_value(64), 7 * t) for t in range(5)])
    path = encode(tmp_path / f"{pix_fmt}.mkv", planes, codec, pix_fmt, color_range)
    with av.open(str(path)) as container:
        assert next(container.decode(video=0)).format.name == decoded_as
    out = read_video(path)
    np.testing.assert_array_equal(out, swscale_grey(path))
    # Lossless codings (ffv1, x264 at crf 0): the planes came back, mapped by
    # the LUT exactly when the video is limited range.
    expected = vio.LIMITED_TO_FULL_LUMA[planes] if expect_lut else planes
    np.testing.assert_array_equal(out, expected)


def test_other_formats_go_through_swscale(tmp_path):
    # 10-bit video is not a luma-plane format: swscale converts it.
    planes = np.stack([every_luma_value(32)] * 3)
    path = tmp_path / "ten_bit.mkv"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("ffv1", rate=25)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p10le"
        for i, y in enumerate(planes):
            frame = av.VideoFrame.from_ndarray(y, "gray").reformat(format="yuv420p10le")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    with av.open(str(path)) as container:
        assert next(container.decode(video=0)).format.name == "yuv420p10le"
    out = read_video(path)
    assert out.dtype == np.uint8 and out.shape == (3, 32, 32)
    np.testing.assert_array_equal(out, swscale_grey(path))
