"""Video for the recipes: colour segments, landmark files, mouth ROIs.

* :func:`read_rgb_video` / :func:`write_rgb_video` — colour frames of a clip
  and a frame-exact libx264 writer (stage 1 cuts long LRS3 pretrain clips
  into segments; greyscale I/O is :mod:`espnet_msrs.video.io`).
* :func:`find_landmark_file` / :func:`save_landmarks` — landmark trees that
  mirror a corpus, and ``.npy`` landmark files.
* :func:`crop_scp` — stage 2: a 96×96 greyscale mouth ROI
  (:func:`espnet_msrs.video.roi.crop_mouth`) for every ``<uid> <video>`` with
  its landmarks, remade when the video, the landmarks or the crop options
  changed (:class:`~espnet_msrs.data_prep.output_sources.OutputSources`);
  utterances without landmarks are reported once, with the fix.
"""

import logging
import os
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np

from espnet_msrs.data_prep.output_sources import OutputSources, source_signature
from espnet_msrs.utils import atomic
from espnet_msrs.utils.data_dir import read_kv, write_if_changed, write_report
from espnet_msrs.utils.parallel import parallel_map

PathLike = Union[str, os.PathLike]
logger = logging.getLogger(__name__)

#: Video frame rate of LRS3 and VoxCeleb2 (and of the mouth crops).
FPS = 25
#: Reason given to an utterance that has no entry in the landmark scp.
NO_LANDMARKS = "no landmarks: no entry in the landmark scp"
#: Suffixes tried, in order, for a landmark file mirroring a video path.
LANDMARK_SUFFIXES = (".pkl", ".npy", ".npz", ".pickle")


def read_rgb_video(path: PathLike) -> Tuple[np.ndarray, float]:
    """Decode all frames of a video as RGB.

    Returns:
        frames: (T, H, W, 3) uint8; fps: the stream's frame rate.

    Raises:
        ValueError: No video stream, undecodable or empty (names the file).
    """
    import av

    frames = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError(f"{path}: no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            rate = stream.average_rate or stream.base_rate or FPS
            for frame in container.decode(stream):
                frames.append(frame.to_ndarray(format="rgb24"))
    except ValueError:
        raise
    except (av.FFmpegError, OSError, EOFError) as e:
        raise ValueError(f"{path}: cannot decode video ({e})") from e
    if not frames:
        raise ValueError(f"{path}: no frame could be decoded")
    return np.stack(frames), float(rate)


def write_rgb_video(
    path: PathLike, frames: np.ndarray, fps: float = FPS, crf: int = 18
) -> Path:
    """Encode (T, H, W, 3) uint8 RGB frames as H.264/yuv420p mp4, atomically.

    Odd heights/widths are cropped by one pixel (yuv420p needs even sizes).
    The written frame count is read back and checked.
    """
    import av

    from espnet_msrs.video.io import video_info

    path = Path(path)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(
            f"write_rgb_video({path}): frames must be uint8 (T, H, W, 3), "
            f"got {frames.dtype} {frames.shape}"
        )
    frames = frames[:, : frames.shape[1] // 2 * 2, : frames.shape[2] // 2 * 2]
    rate = Fraction(fps).limit_denominator(1001000)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic.atomic_path(path) as tmp:
        with av.open(
            str(tmp), mode="w", format="mp4", options={"movflags": "+faststart"}
        ) as container:
            stream = container.add_stream("libx264", rate=rate)
            stream.width, stream.height = frames.shape[2], frames.shape[1]
            stream.pix_fmt = "yuv420p"
            stream.codec_context.time_base = 1 / rate
            stream.options = {"crf": str(crf)}
            for i, image in enumerate(frames):
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), "rgb24")
                frame = frame.reformat(format="yuv420p")
                frame.pts = i
                frame.time_base = 1 / rate
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
        written = video_info(tmp)["num_frames"]
        if written != len(frames):
            raise RuntimeError(
                f"write_rgb_video({path}): wrote {written} frames instead of {len(frames)}"
            )
    return path


def find_landmark_file(landmark_root: Optional[Path], rel: Path) -> Optional[Path]:
    """``<landmark_root>/<rel without suffix>{.pkl,.npy,.npz,.pickle}`` if any."""
    if landmark_root is None:
        return None
    stem = landmark_root / rel.with_suffix("")
    for suffix in LANDMARK_SUFFIXES:
        candidate = stem.parent / (stem.name + suffix)
        if candidate.is_file():
            return candidate
    return None


def save_landmarks(path: PathLike, landmarks: np.ndarray) -> Path:
    """Write (T, 68, 2) landmarks (NaN = no face) as float32 ``.npy``, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic.atomic_open(path, "wb") as f:
        np.save(f, np.asarray(landmarks, dtype=np.float32))
    return path


# ------------------------------------------------------------------ stage 2
@dataclass(frozen=True)
class CropOptions:
    """How mouth ROIs are cut (part of every output's recorded signature)."""

    crop_size: int = 96
    smooth_window: int = 5
    fps: float = FPS
    crf: int = 18

    def __str__(self) -> str:
        return (f"crop_size={self.crop_size} smooth_window={self.smooth_window} "
                f"fps={self.fps:g} crf={self.crf}")


@dataclass(frozen=True)
class _CropJob:
    uid: str
    video: str
    landmarks: str
    out: str
    options: CropOptions


def _crop_one(job: _CropJob) -> Optional[str]:
    """Crop one utterance; returns the reason of a failure, or None."""
    from espnet_msrs.video.io import VideoReadError, read_video, video_info, write_video
    from espnet_msrs.video.roi import crop_mouth, load_landmarks

    opts = job.options
    try:
        fps = video_info(job.video, uid=job.uid, default_fps=opts.fps)["fps"]
        if abs(fps - opts.fps) > 0.01:
            return f"frame rate {fps:g} of {job.video} is not --fps {opts.fps:g}"
        roi = crop_mouth(
            read_video(job.video, uid=job.uid),
            load_landmarks(job.landmarks),
            crop_size=opts.crop_size,
            smooth_window=opts.smooth_window,
            path=f"{job.video} (landmarks {job.landmarks})",
        )
        write_video(job.out, roi, fps=opts.fps, crf=opts.crf)
    except (VideoReadError, ValueError, RuntimeError, OSError) as e:
        return " ".join(str(e).split())
    return None


def crop_scp(
    video_scp: PathLike,
    landmark_scp: PathLike,
    out_dir: PathLike,
    out_scp: PathLike,
    options: CropOptions = CropOptions(),
    failed_list: Optional[PathLike] = None,
    nj: int = 1,
    missing_landmarks_hint: str = "",
) -> Dict[str, int]:
    """Crop the mouth ROI of every video of ``video_scp`` to ``<out_dir>/<uid>.mp4``.

    Videos are not resampled in time: one whose frame rate is not
    ``options.fps`` fails. Failures (no landmark entry, unreadable video or
    landmarks, no face in any frame, frame-count mismatch, other frame rate)
    are listed with the reason in ``failed_list`` (default
    ``<out_dir>/failed.txt``) and left out of ``out_scp``. Utterances without
    landmarks are reported in one warning that ends with
    ``missing_landmarks_hint`` (how to get them).

    Returns:
        Counts: ``written``, ``kept``, ``failed``, ``no_landmarks``.
    """
    videos = read_kv(video_scp)
    landmarks = read_kv(landmark_scp) if Path(landmark_scp).is_file() else {}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ledger = OutputSources(out_dir)
    failed: Dict[str, str] = {}
    done: List[str] = []
    jobs: List[_CropJob] = []
    signatures: Dict[str, str] = {}
    for uid, video in videos.items():
        out = out_dir / f"{uid}.mp4"
        if "/" in uid or uid.startswith("."):
            failed[uid] = "utterance id is not a valid file name"
        elif uid not in landmarks:
            failed[uid] = NO_LANDMARKS
        else:
            signatures[uid] = source_signature([video, landmarks[uid]], str(options))
            if ledger.is_current(uid, out, signatures[uid]):
                done.append(uid)
            else:
                jobs.append(_CropJob(uid, video, landmarks[uid], str(out), options))
    logger.info(
        "Mouth ROI: video_scp=%s landmark_scp=%s -> out_dir=%s utterances=%d "
        "to_write=%d (%s) nj=%d",
        video_scp, landmark_scp, out_dir, len(videos), len(jobs), options, nj,
    )

    def _report(job: _CropJob, reason: Optional[str]) -> None:
        if reason is not None:
            logger.warning("failed utt_id=%s reason=%s", job.uid, reason)

    reasons = parallel_map(_crop_one, jobs, nj=nj, what="videos", on_result=_report)
    for job, reason in zip(jobs, reasons):
        if reason is None:
            ledger.record(job.uid, signatures[job.uid])
            done.append(job.uid)
        else:
            failed[job.uid] = reason
            ledger.forget(job.uid)
            Path(job.out).unlink(missing_ok=True)  # an older crop of other inputs
    ledger.save(keep=done)
    kept = set(done)
    write_if_changed(
        out_scp, "".join(f"{u} {out_dir / (u + '.mp4')}\n" for u in videos if u in kept)
    )
    failed_path = Path(failed_list or out_dir / "failed.txt")
    write_report(failed_path, failed.items())
    no_landmarks = sorted(u for u, r in failed.items() if r == NO_LANDMARKS)
    counts = {
        "written": len(jobs) - sum(r is not None for r in reasons),
        "kept": len(done) - (len(jobs) - sum(r is not None for r in reasons)),
        "failed": len(failed),
        "no_landmarks": len(no_landmarks),
    }
    kinds = Counter(r.split(":")[0] for r in failed.values())
    logger.info(
        "Mouth ROI done: written=%d skipped=%d failed=%d (%s) out_scp=%s failed_list=%s",
        counts["written"], counts["kept"], counts["failed"],
        ", ".join(f"{k}: {v}" for k, v in sorted(kinds.items())) or "none",
        out_scp, failed_path,
    )
    if no_landmarks:
        logger.warning(
            "%d of %d utterance(s) have no landmarks and are left out (e.g. %s; listed "
            "in %s)%s",
            len(no_landmarks), len(videos), no_landmarks[0], failed_path,
            f": {missing_landmarks_hint}" if missing_landmarks_hint else "",
        )
    return counts
