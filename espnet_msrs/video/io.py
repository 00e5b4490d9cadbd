"""Greyscale video I/O for the VSR/AVSR recipes (DESIGN.md §3).

Mouth-crop videos are stored either as H.264 ``.mp4`` files (libx264,
yuv420p, 25 fps) or as raw ``uint8`` arrays in ``.npy``/``.npz`` files. Every
reader returns a ``uint8`` array of shape ``(T, H, W)`` (greyscale).

Grey values of a coded video are those of FFmpeg's scaler (swscale) converting
a decoded frame to ``gray``: it keeps the luma (Y) plane and, for
limited-range ("TV", 16–235) video, expands it to full range (0–255). Reading
through swscale costs more than decoding a 96×96 clip, so 8-bit planar YUV
and ``gray`` frames (:data:`LUMA_PLANE_FORMATS`; every mp4 the project writes
is yuv420p) take the Y plane directly, mapped by :data:`LIMITED_TO_FULL_LUMA`
(swscale's expansion as a lookup table) unless the frame is full range; the
result equals swscale's bit for bit (tests/video/test_io.py). Other pixel
formats (RGB, 10-bit, ...) still go through swscale.

This module does not import espnet2, so it is cheap to import from data-prep
scripts and DataLoader workers.
"""

import logging
import os
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

import av
import numpy as np

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

#: File suffixes that hold a raw array instead of a coded video.
ARRAY_SUFFIXES = (".npy", ".npz")
#: Container suffixes that :func:`write_video` can encode to.
VIDEO_SUFFIXES = (".mp4",)


def _limited_to_full_luma() -> np.ndarray:
    y = np.arange(256, dtype=np.int64)
    # round((y - 16) * 255 / 219) = round(85 (y - 16) / 73); never a tie (73 is odd).
    return np.clip((170 * (y - 16) + 73) // 146, 0, 255).astype(np.uint8)


#: swscale's 8-bit luma expansion from limited range (16–235) to full range
#: (0–255): ``clip(round((y - 16) · 255 / 219), 0, 255)``, which equals its
#: fixed-point ``lumRangeToJpeg`` (``((min(y << 7, 30189) · 19077 − 39057361)
#: >> 14 + 64) >> 7``) for every 8-bit value.
LIMITED_TO_FULL_LUMA = _limited_to_full_luma()
LIMITED_TO_FULL_LUMA.flags.writeable = False

#: 8-bit pixel formats whose first plane is the luma (Y) at one byte a pixel.
LUMA_PLANE_FORMATS = frozenset(
    {
        "gray", "nv12", "nv21",
        "yuv410p", "yuv411p", "yuv420p", "yuv422p", "yuv440p", "yuv444p",
        "yuvj420p", "yuvj422p", "yuvj440p", "yuvj444p",
    }
)
#: Of those, the formats that are full range whatever ``color_range`` says
#: (swscale treats ``gray`` and the deprecated ``yuvj*`` formats as full range).
_FULL_RANGE_FORMATS = frozenset(
    {"gray", "yuvj420p", "yuvj422p", "yuvj440p", "yuvj444p"}
)
#: ``AVColorRange`` value of full-range ("JPEG", "PC") video.
_AVCOL_RANGE_JPEG = 2


class VideoReadError(ValueError):
    """A video file is missing, truncated, corrupt or of the wrong shape/dtype.

    Attributes:
        path: The file that failed.
        uid: The utterance id given by the caller, or None.
    """

    def __init__(self, path: PathLike, reason: str, uid: Optional[str] = None):
        self.path = str(path)
        self.uid = uid
        where = f"path={self.path}" if uid is None else f"uid={uid} path={self.path}"
        super().__init__(f"Cannot read video ({where}): {reason}")


def _check_frames(
    array: np.ndarray, path: PathLike, uid: Optional[str] = None
) -> np.ndarray:
    """Check that an array is a ``uint8`` greyscale video ``(T, H, W)``."""
    if not isinstance(array, np.ndarray):
        raise VideoReadError(path, f"expected a numpy array, got {type(array)}", uid)
    if array.dtype != np.uint8:
        raise VideoReadError(
            path, f"expected dtype uint8 (T, H, W), got dtype {array.dtype}", uid
        )
    if array.ndim != 3 or min(array.shape) == 0:
        raise VideoReadError(
            path,
            f"expected a non-empty uint8 array of shape (T, H, W), "
            f"got shape {array.shape}",
            uid,
        )
    return array


def _load_array(path: Path, uid: Optional[str], mmap: bool = False) -> np.ndarray:
    """Load the ``(T, H, W)`` array of a ``.npy`` or ``.npz`` file."""
    try:
        if path.suffix == ".npy":
            return np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
        with np.load(path, allow_pickle=False) as npz:
            if "video" in npz.files:
                return npz["video"]
            if len(npz.files) == 1:
                return npz[npz.files[0]]
            raise VideoReadError(
                path,
                f"npz must hold a 'video' array or a single array, "
                f"got keys {sorted(npz.files)}",
                uid,
            )
    except VideoReadError:
        raise
    except (OSError, ValueError, EOFError) as e:
        raise VideoReadError(path, f"corrupt array file ({e})", uid) from e


def _open_error(path: Path, uid: Optional[str], e: Exception) -> VideoReadError:
    return VideoReadError(path, f"corrupt or truncated video file ({e})", uid)


def read_video(path: PathLike, uid: Optional[str] = None) -> np.ndarray:
    """Read a greyscale video.

    Args:
        path: An ``.npy``/``.npz`` file holding a ``uint8`` array ``(T, H, W)``
            (``.npz``: key ``video`` or its single array), or a video file that
            FFmpeg can decode (``.mp4``); colour video is converted to grey.
        uid: Utterance id, named in error messages.

    Returns:
        frames: (T, H, W) ``uint8``.

    Raises:
        VideoReadError: The file is missing, truncated or corrupt (fewer frames
            decoded than the container declares), or the array has the wrong
            dtype/shape. The message names ``path`` and ``uid``.
    """
    path = Path(path)
    if not path.is_file():
        raise VideoReadError(path, "no such file", uid)
    if path.suffix in ARRAY_SUFFIXES:
        return _check_frames(np.asarray(_load_array(path, uid)), path, uid)

    try:
        with av.open(str(path), mode="r") as container:
            if len(container.streams.video) == 0:
                raise VideoReadError(path, "the file has no video stream", uid)
            stream = container.streams.video[0]
            # Decoder threads stay off: threading a 96×96 clip's decode costs
            # more than it saves (bench/data_pipeline.py measures it).
            declared = stream.frames
            planes = [_grey_plane(frame) for frame in container.decode(stream)]
    except VideoReadError:
        raise
    except (av.FFmpegError, OSError, EOFError, ValueError) as e:
        raise _open_error(path, uid, e) from e
    if len(planes) == 0:
        raise VideoReadError(path, "no frame could be decoded", uid)
    if declared > 0 and len(planes) != declared:
        raise VideoReadError(
            path,
            f"truncated video: the container declares {declared} frames "
            f"but {len(planes)} were decoded",
            uid,
        )
    sizes = {plane.shape for plane, _ in planes}
    if len(sizes) != 1:
        raise VideoReadError(
            path, f"the frame size changes within the video: {sorted(sizes)}", uid
        )
    if all(limited for _, limited in planes):
        video = np.stack([plane for plane, _ in planes])
        # One pass over the whole clip, in place (``video`` is a fresh array).
        np.take(LIMITED_TO_FULL_LUMA, video, out=video, mode="clip")
    else:
        video = np.stack(
            [LIMITED_TO_FULL_LUMA[p] if limited else p for p, limited in planes]
        )
    return _check_frames(video, path, uid)


def _grey_plane(frame: av.VideoFrame) -> Tuple[np.ndarray, bool]:
    """The grey (H, W) ``uint8`` image of a decoded frame.

    Returns:
        ``(image, limited)``. For :data:`LUMA_PLANE_FORMATS` the image is a
        view of the frame's Y plane and ``limited`` says whether it still has
        to be mapped through :data:`LIMITED_TO_FULL_LUMA`; frames of other
        formats are converted by swscale (``limited`` False).
    """
    name = frame.format.name
    if name not in LUMA_PLANE_FORMATS:
        return frame.to_ndarray(format="gray"), False
    plane = frame.planes[0]
    luma = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
    luma = luma[: frame.height, : frame.width]
    limited = not (
        name in _FULL_RANGE_FORMATS or frame.color_range == _AVCOL_RANGE_JPEG
    )
    return luma, limited


def video_info(
    path: PathLike, uid: Optional[str] = None, default_fps: float = 25.0
) -> Dict[str, Union[int, float]]:
    """Number of frames, frame rate and frame size of a video.

    For a coded video only the container metadata is read; when the
    container does not declare a frame count, the video is decoded to count.
    Arrays carry no frame rate: ``default_fps`` is reported for them.

    Args:
        path: A video or ``.npy``/``.npz`` file (see :func:`read_video`).
        uid: Utterance id, named in error messages.
        default_fps: Frame rate reported for ``.npy``/``.npz`` arrays.

    Returns:
        ``dict(num_frames=int, fps=float, height=int, width=int)``.

    Raises:
        VideoReadError: As :func:`read_video`.
    """
    path = Path(path)
    if not path.is_file():
        raise VideoReadError(path, "no such file", uid)
    if path.suffix in ARRAY_SUFFIXES:
        array = _load_array(path, uid, mmap=True)
        if array.dtype != np.uint8 or array.ndim != 3:
            _check_frames(np.asarray(array), path, uid)
        t, h, w = array.shape
        return dict(num_frames=int(t), fps=float(default_fps), height=h, width=w)
    try:
        with av.open(str(path), mode="r") as container:
            if len(container.streams.video) == 0:
                raise VideoReadError(path, "the file has no video stream", uid)
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.base_rate or stream.guessed_rate
            height = stream.codec_context.height
            width = stream.codec_context.width
            num_frames = stream.frames
    except VideoReadError:
        raise
    except (av.FFmpegError, OSError, EOFError, ValueError) as e:
        raise _open_error(path, uid, e) from e
    if num_frames <= 0 or not rate or height <= 0 or width <= 0:
        logger.debug(f"Decoding to get video info: path={path}")
        frames = read_video(path, uid=uid)
        num_frames = frames.shape[0]
        height, width = frames.shape[1:]
        if not rate:
            rate = default_fps
    return dict(
        num_frames=int(num_frames),
        fps=float(rate),
        height=int(height),
        width=int(width),
    )


def write_video(
    path: PathLike,
    frames: np.ndarray,
    fps: Union[int, float, Fraction] = 25,
    crf: int = 18,
) -> Path:
    """Write a greyscale video, atomically and frame-exactly.

    ``.mp4`` is coded with libx264 in yuv420p (``+faststart``, so a truncated
    file is detected by :func:`read_video`); ``.npy``/``.npz`` store the array
    as it is. The file is written under a temporary name in the same folder
    and renamed at the end, so a crash never leaves a partial file under
    ``path``. The frame count of a written ``.mp4`` is read back and checked.

    Args:
        path: Output file (``.mp4``, ``.npy`` or ``.npz``).
        frames: (T, H, W) ``uint8``; H and W even for ``.mp4`` (yuv420p).
        fps: Frame rate.
        crf: libx264 constant rate factor (0 = lossless, 18 = visually lossless).

    Returns:
        The written path.

    Raises:
        ValueError: Bad ``frames`` shape/dtype, odd frame size for ``.mp4``,
            bad ``fps``/``crf`` or an unsupported suffix.
        RuntimeError: The written file does not hold ``T`` frames.
    """
    path = Path(path)
    if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8:
        raise ValueError(
            f"write_video({path}): frames must be a uint8 numpy array (T, H, W), "
            f"got {getattr(frames, 'dtype', type(frames))}"
        )
    if frames.ndim != 3 or min(frames.shape) == 0:
        raise ValueError(
            f"write_video({path}): frames must have shape (T, H, W) with T, H, W > 0, "
            f"got {frames.shape}"
        )
    if path.suffix not in VIDEO_SUFFIXES + ARRAY_SUFFIXES:
        raise ValueError(
            f"write_video({path}): unsupported suffix {path.suffix!r}; "
            f"allowed: {VIDEO_SUFFIXES + ARRAY_SUFFIXES}"
        )
    if path.suffix in VIDEO_SUFFIXES:
        if frames.shape[1] % 2 or frames.shape[2] % 2:
            raise ValueError(
                f"write_video({path}): yuv420p needs an even height and width, "
                f"got {frames.shape[1:]}"
            )
        if not fps or float(fps) <= 0:
            raise ValueError(f"write_video({path}): fps must be > 0, got {fps}")
        if not 0 <= crf <= 51:
            raise ValueError(f"write_video({path}): crf must be in [0, 51], got {crf}")

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}"
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        if path.suffix == ".npy":
            np.save(tmp, frames)
        elif path.suffix == ".npz":
            np.savez_compressed(tmp, video=frames)
        else:
            _encode_mp4(tmp, frames, fps, crf)
            written = video_info(tmp)["num_frames"]
            if written != frames.shape[0]:
                raise RuntimeError(
                    f"write_video({path}): wrote {written} frames instead of "
                    f"{frames.shape[0]}"
                )
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _encode_mp4(
    path: Path, frames: np.ndarray, fps: Union[int, float, Fraction], crf: int
) -> None:
    """Encode ``frames`` (T, H, W) uint8 with libx264/yuv420p into ``path``."""
    rate = Fraction(fps).limit_denominator(1001000)
    with av.open(
        str(path), mode="w", format="mp4", options={"movflags": "+faststart"}
    ) as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width = frames.shape[2]
        stream.height = frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = 1 / rate
        # The corpus and ROI tools must be byte-deterministic (they already run
        # several processes in parallel), so: one encoder thread (multi-threaded
        # x264 output differs run to run), and no macroblock tree — with mbtree
        # on, libx264 (core 165) encoded the same frames differently within one
        # process (e.g. 4 different files out of 6 encodes of a 160×160 clip
        # with pixel noise; tests/video/test_io.py), which made the synthetic
        # corpus and the demo's WER vary from run to run.
        stream.options = {"crf": str(crf), "threads": "1", "x264-params": "mbtree=0"}
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), "gray")
            frame = frame.reformat(format="yuv420p")
            frame.pts = i
            frame.time_base = 1 / rate
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
