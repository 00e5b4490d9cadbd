#!/usr/bin/env python3
"""Crop 96×96 greyscale mouth ROIs for a Kaldi-style data directory (stage 2).

Example::

    python -m espnet_msrs.bin.crop_mouth \\
        --video_scp data/train/video.scp --landmark_scp data/train/landmark.scp \\
        --out_dir dump/roi/train --out_scp dump/roi/train/video.scp --nj 2

``video.scp`` and ``landmark.scp`` hold ``<utt_id> <path>`` lines; landmark
files are read by :func:`espnet_msrs.video.roi.load_landmarks` (``.npy``,
``.npz``, pickled per-frame lists). For every utterance the crop
(:func:`espnet_msrs.video.roi.crop_mouth`) is written to
``<out_dir>/<utt_id>.mp4`` (libx264) and listed in ``--out_scp``. Frames are
not resampled in time: a video whose frame rate is not ``--fps`` (25, the
rate of LRS3, VoxCeleb2 and the synthetic corpus) is reported as failed.

Outputs that already exist are kept (the writer is atomic, so an existing
file is complete); ``--out_scp`` and the failure list are rewritten only when
their content changes, so a second run does nothing. Utterances that fail
(missing landmark entry, unreadable video or landmarks, no face in any
frame, frame-count mismatch, other frame rate) are written with the reason
to ``--failed_list`` (default ``<out_dir>/failed.txt``, ``<utt_id>\\t<reason>``
lines) and left out of ``--out_scp``; the command exits with status 1 if any
failed, unless ``--allow_failures true``.
"""

import argparse
import logging
import multiprocessing
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from espnet_msrs.utils.runtime import setup_logging

logger = logging.getLogger(__name__)


def str2bool(value: str) -> bool:
    """Parse ``true``/``false`` (ESPnet's convention for boolean options)."""
    lowered = str(value).lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def read_scp(path: str) -> Dict[str, str]:
    """Read ``<key> <value>`` lines in file order; duplicate keys are an error."""
    entries: Dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            parts = line.split(maxsplit=1)
            if len(parts) != 2:
                raise ValueError(
                    f"{path}:{lineno}: expected '<utt_id> <path>', got {line!r}"
                )
            if parts[0] in entries:
                raise ValueError(
                    f"{path}:{lineno}: duplicate utterance id {parts[0]!r}"
                )
            entries[parts[0]] = parts[1]
    return entries


def _write_if_changed(path: Path, content: str) -> bool:
    """Atomically write ``content`` unless the file already holds it."""
    if path.is_file() and path.read_text(encoding="utf-8") == content:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(content)
    os.replace(tmp, path)
    return True


@dataclass(frozen=True)
class _Job:
    uid: str
    video: str
    landmarks: Optional[str]
    out: str
    crop_size: int
    smooth_window: int
    fps: float
    crf: int


def _run(job: _Job) -> Tuple[str, str, Optional[str]]:
    """Crop one utterance. Returns (uid, status, reason) with status in
    ``written`` / ``skipped`` / ``failed``."""
    from espnet_msrs.video.io import (
        VideoReadError,
        read_video,
        video_info,
        write_video,
    )
    from espnet_msrs.video.roi import crop_mouth, load_landmarks

    if Path(job.out).is_file():
        return job.uid, "skipped", None
    if job.landmarks is None:
        return job.uid, "failed", "no entry in the landmark scp"
    try:
        fps = video_info(job.video, uid=job.uid, default_fps=job.fps)["fps"]
        if abs(fps - job.fps) > 0.01:
            return (
                job.uid,
                "failed",
                f"frame rate {fps:g} of {job.video} is not --fps {job.fps:g}",
            )
        frames = read_video(job.video, uid=job.uid)
        landmarks = load_landmarks(job.landmarks)
        roi = crop_mouth(
            frames,
            landmarks,
            crop_size=job.crop_size,
            smooth_window=job.smooth_window,
            path=f"{job.video} (landmarks {job.landmarks})",
        )
        write_video(job.out, roi, fps=job.fps, crf=job.crf)
    except (VideoReadError, ValueError, RuntimeError, OSError) as e:
        return job.uid, "failed", " ".join(str(e).split())
    return job.uid, "written", None


def get_parser() -> argparse.ArgumentParser:
    """Command-line parser."""
    parser = argparse.ArgumentParser(
        description="Crop greyscale mouth ROIs from videos and 68-point landmarks",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--video_scp", required=True, help="<utt_id> <video path> lines"
    )
    parser.add_argument(
        "--landmark_scp", required=True, help="<utt_id> <landmark file> lines"
    )
    parser.add_argument("--out_dir", required=True, help="Directory of the ROI mp4s")
    parser.add_argument("--out_scp", required=True, help="Output video.scp of the ROIs")
    parser.add_argument(
        "--failed_list",
        default=None,
        help="Failures with reasons (default: <out_dir>/failed.txt)",
    )
    parser.add_argument(
        "--allow_failures",
        type=str2bool,
        default=False,
        help="Exit 0 even if some utterances failed",
    )
    parser.add_argument("--crop_size", type=int, default=96)
    parser.add_argument(
        "--smooth_window", type=int, default=5, help="Landmark smoothing (frames)"
    )
    parser.add_argument("--fps", type=float, default=25.0, help="Frame rate written")
    parser.add_argument("--crf", type=int, default=18, help="libx264 CRF")
    parser.add_argument("--nj", type=int, default=1, help="Parallel processes")
    parser.add_argument(
        "--log_level",
        default="INFO",
        choices=("ERROR", "WARNING", "INFO", "DEBUG"),
        help="Logging level",
    )
    return parser


def main(cmd: Optional[List[str]] = None) -> int:
    """Run the cropper; returns (and exits with) the process status."""
    args = get_parser().parse_args(cmd)
    setup_logging(args.log_level)
    if args.nj < 1:
        raise ValueError(f"--nj={args.nj} must be >= 1")
    videos = read_scp(args.video_scp)
    landmarks = read_scp(args.landmark_scp)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    failed_list = Path(args.failed_list or out_dir / "failed.txt")
    extra = sorted(set(landmarks) - set(videos))
    if extra:
        logger.debug(
            "landmark entries without video: %d (e.g. %s)", len(extra), extra[0]
        )

    results: Dict[str, Tuple[str, Optional[str]]] = {}
    jobs = []
    for uid, video in videos.items():
        if "/" in uid or uid.startswith("."):
            results[uid] = ("failed", "utterance id is not a valid file name")
            continue
        jobs.append(
            _Job(
                uid=uid,
                video=video,
                landmarks=landmarks.get(uid),
                out=str(out_dir / f"{uid}.mp4"),
                crop_size=args.crop_size,
                smooth_window=args.smooth_window,
                fps=args.fps,
                crf=args.crf,
            )
        )
    logger.info(
        "Mouth ROI: video_scp=%s landmark_scp=%s -> out_dir=%s utterances=%d nj=%d",
        args.video_scp,
        args.landmark_scp,
        out_dir,
        len(videos),
        args.nj,
    )
    start = last = time.monotonic()
    if args.nj == 1 or len(jobs) <= 1:
        pool, iterator = None, map(_run, jobs)
    else:
        ctx = multiprocessing.get_context("fork" if hasattr(os, "fork") else "spawn")
        pool = ctx.Pool(args.nj)
        iterator = pool.imap_unordered(_run, jobs, chunksize=1)
    try:
        for done, (uid, status, reason) in enumerate(iterator, 1):
            results[uid] = (status, reason)
            if status == "failed":
                logger.warning("failed utt_id=%s reason=%s", uid, reason)
            now = time.monotonic()
            if now - last > 10.0 or done == len(jobs):
                rate = done / max(now - start, 1e-9)
                logger.info(
                    "progress done=%d/%d rate=%.1f utt/s eta=%.0fs",
                    done,
                    len(jobs),
                    rate,
                    (len(jobs) - done) / rate,
                )
                last = now
    finally:
        if pool is not None:
            pool.close()
            pool.join()

    counts = {"written": 0, "skipped": 0, "failed": 0}
    scp_lines, failed_lines = [], []
    for uid in videos:  # keep the input order
        status, reason = results[uid]
        counts[status] += 1
        if status == "failed":
            failed_lines.append(f"{uid}\t{reason}\n")
        else:
            scp_lines.append(f"{uid} {out_dir / (uid + '.mp4')}\n")
    _write_if_changed(Path(args.out_scp), "".join(scp_lines))
    _write_if_changed(failed_list, "".join(failed_lines))
    logger.info(
        "Mouth ROI done: written=%d skipped=%d failed=%d elapsed=%.1fs out_scp=%s "
        "failed_list=%s",
        counts["written"],
        counts["skipped"],
        counts["failed"],
        time.monotonic() - start,
        args.out_scp,
        failed_list,
    )
    if counts["failed"] and not args.allow_failures:
        logger.error(
            "%d utterance(s) failed (see %s); pass --allow_failures true to continue",
            counts["failed"],
            failed_list,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
