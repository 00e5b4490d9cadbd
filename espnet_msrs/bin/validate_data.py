#!/usr/bin/env python3
"""Validate and format a data directory (recipe stage 3).

Example::

    python -m espnet_msrs.bin.validate_data --in_dir dump/prep/train \\
        --out_dir dump/raw/org/train --modality av --sample_rate 16000 --fps 25 \\
        --frame_size 96 --av_tolerance 2 --nj 4

Every utterance of ``<in_dir>/text`` is checked (issue 5, item 2):

* the transcript exists and is not empty;
* audio (modality ``audio``/``av``): listed in ``wav.scp``, the file exists,
  opens and decodes, is mono with ``--sample_rate`` Hz and not empty;
* video (modality ``video``/``av``): listed in ``video.scp``, the file exists
  and decodes completely (a truncated file is caught), has ``--fps`` frames
  per second and ``--frame_size`` square frames (0: any size);
* audio and video (``av``): their lengths agree within ``--av_tolerance``
  frames at ``--fps`` (audio frames = ceil(samples · fps / sample_rate)).

Utterances that fail are written to ``<out_dir>/bad_utts.txt`` as
``<utt_id><TAB><reason>`` (the reason of a stage-2 failure given by
``--failed_list`` is carried over) and are left out of the output; with
``--strict true`` any failure makes the command exit with status 1 instead.
Nothing is dropped silently: the counts per reason are logged and written
to ``<out_dir>/validation.json``.

Output (Kaldi style, sorted): ``text``, ``utt2spk``, ``spk2utt``,
``wav.scp``/``video.scp`` (as needed by the modality), ``utt2dur`` (seconds)
and ``utt2num_frames`` (frames at ``--fps``). With ``--video_dump_dir`` the
decoded videos are also dumped as ``.npy`` arrays there and ``video.scp``
lists them (decoding an mp4 costs more than a tiny model's training step).
"""

import argparse
import json
import logging
import math
import multiprocessing
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from espnet_msrs.utils.runtime import setup_logging
from espnet_msrs.utils.data_dir import (
    read_kv,
    spk2utt_from_utt2spk,
    str2bool,
    write_if_changed,
    write_kv,
)

MODALITIES = ("audio", "video", "av")
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Expectations:
    """What a valid utterance looks like.

    Attributes:
        modality: ``audio``, ``video`` or ``av``.
        sample_rate: Audio sampling rate (Hz).
        fps: Video frame rate.
        frame_size: Side of the square video frames (0: any size).
        av_tolerance: Max audio/video length difference in frames.
        fps_tolerance: Allowed deviation of the container frame rate.
        decode_video: Decode every frame (catches truncated files) instead of
            trusting the container's frame count.
    """

    modality: str
    sample_rate: int = 16000
    fps: float = 25.0
    frame_size: int = 96
    av_tolerance: int = 2
    fps_tolerance: float = 0.01
    decode_video: bool = True

    @property
    def audio(self) -> bool:
        return self.modality in ("audio", "av")

    @property
    def video(self) -> bool:
        return self.modality in ("video", "av")


@dataclass
class UttInfo:
    """Facts measured for one valid utterance."""

    duration: float
    num_frames: int


def check_audio(path: str, exp: Expectations) -> Tuple[Optional[str], int]:
    """Open and check one audio file.

    Returns:
        (reason or None, number of samples).
    """
    import soundfile

    if not Path(path).is_file():
        return f"missing audio file {path}", 0
    try:
        info = soundfile.info(path)
        audio, rate = soundfile.read(path, dtype="float32", always_2d=True)
    except Exception as e:  # libsndfile raises several types for corrupt files
        return f"corrupt audio {path}: {' '.join(str(e).split())}", 0
    if rate != exp.sample_rate:
        return f"wrong sample rate: {rate} Hz in {path}, expected {exp.sample_rate} Hz", 0
    if audio.shape[1] != 1:
        return f"{audio.shape[1]} audio channels in {path}, expected mono", 0
    if audio.shape[0] == 0:
        return f"empty audio {path}", 0
    if info.frames > audio.shape[0]:
        return (
            f"truncated audio {path}: header says {info.frames} samples, "
            f"{audio.shape[0]} decoded"
        ), 0
    return None, int(audio.shape[0])


def check_video(
    path: str, uid: str, exp: Expectations, dump_to: Optional[str] = None
) -> Tuple[Optional[str], int]:
    """Open and check one video file.

    Args:
        path: The video.
        uid: Utterance id (for messages).
        exp: Expectations.
        dump_to: Write the decoded frames of a valid video to this ``.npy``.

    Returns:
        (reason or None, number of frames).
    """
    from espnet_msrs.video.io import VideoReadError, read_video, video_info

    if not Path(path).is_file():
        return f"missing video file {path}", 0
    frames = None
    try:
        info = video_info(path, uid=uid, default_fps=exp.fps)
        if exp.decode_video or dump_to:
            frames = read_video(path, uid=uid)
            num, height, width = frames.shape
        else:
            num, height, width = info["num_frames"], info["height"], info["width"]
    except (VideoReadError, ValueError, OSError, RuntimeError) as e:
        return f"corrupt video {path}: {' '.join(str(e).split())}", 0
    if abs(info["fps"] - exp.fps) > exp.fps_tolerance:
        return f"wrong frame rate: {info['fps']:g} fps in {path}, expected {exp.fps:g}", 0
    if exp.frame_size and (height, width) != (exp.frame_size, exp.frame_size):
        return (
            f"wrong frame size: {width}x{height} in {path}, expected "
            f"{exp.frame_size}x{exp.frame_size}"
        ), 0
    if num == 0:
        return f"empty video {path}", 0
    if dump_to:
        _save_npy(dump_to, frames)
    return None, int(num)


def _save_npy(path: str, array) -> None:
    """Write ``array`` to ``path`` atomically (``np.save`` to a temporary name)."""
    import os
    import tempfile

    import numpy as np

    fd, tmp = tempfile.mkstemp(dir=Path(path).parent, prefix=".", suffix=".npy")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, array)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def check_utterance(
    uid: str,
    text: Optional[str],
    wav: Optional[str],
    video: Optional[str],
    exp: Expectations,
    prior_failure: Optional[str] = None,
    video_dump: Optional[str] = None,
) -> Tuple[Optional[str], Optional[UttInfo]]:
    """Check one utterance.

    Args:
        uid: Utterance id.
        text: Its transcript (None: no entry).
        wav: Its audio path (None: no entry in wav.scp).
        video: Its video path (None: no entry in video.scp).
        exp: Expectations.
        prior_failure: Why an earlier stage dropped its audio/video, if it did.
        video_dump: Write the decoded video to this ``.npy`` (when valid).

    Returns:
        (reason, None) for a bad utterance, (None, UttInfo) for a good one.
    """
    if text is None:
        return "no transcript in text", None
    if not text.strip():
        return "empty text", None
    samples = frames = 0
    if exp.audio:
        if wav is None:
            why = f" ({prior_failure})" if prior_failure else ""
            return f"no audio entry in wav.scp{why}", None
        reason, samples = check_audio(wav, exp)
        if reason:
            return reason, None
    if exp.video:
        if video is None:
            why = f" ({prior_failure})" if prior_failure else ""
            return f"missing video: no entry in video.scp{why}", None
        reason, frames = check_video(video, uid, exp, dump_to=video_dump)
        if reason:
            return reason, None
    if exp.audio:
        audio_frames = math.ceil(samples * exp.fps / exp.sample_rate - 1e-9)
        if exp.video and abs(audio_frames - frames) > exp.av_tolerance:
            return (
                f"audio/video length mismatch: audio {samples / exp.sample_rate:.3f} s "
                f"= {audio_frames} frames, video {frames} frames "
                f"({frames / exp.fps:.3f} s); tolerance {exp.av_tolerance} frames"
            ), None
        duration = samples / exp.sample_rate
        return None, UttInfo(duration, frames if exp.video else audio_frames)
    return None, UttInfo(frames / exp.fps, frames)


def _job(args) -> Tuple[str, Optional[str], Optional[UttInfo]]:
    uid, text, wav, video, exp, prior, dump = args
    reason, info = check_utterance(uid, text, wav, video, exp, prior, dump)
    return uid, reason, info


def _read_failed(paths: List[str]) -> Dict[str, str]:
    out: Dict[str, str] = {}
    for path in paths:
        if not Path(path).is_file():
            continue
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            if line.strip():
                uid, _, reason = line.partition("\t")
                out.setdefault(uid.strip(), reason.strip() or "failed at stage 2")
    return out


def validate_data_dir(
    in_dir: str,
    out_dir: str,
    exp: Expectations,
    strict: bool = False,
    nj: int = 1,
    failed_lists: Optional[List[str]] = None,
    video_dump_dir: Optional[str] = None,
) -> Dict:
    """Validate ``in_dir`` and write the good utterances to ``out_dir``.

    Args:
        in_dir: Data directory with ``text`` and the scp files.
        out_dir: Output data directory.
        exp: Expectations.
        strict: Raise instead of excluding bad utterances.
        nj: Parallel processes.
        failed_lists: ``<utt>\\t<reason>`` files of earlier stages.
        video_dump_dir: Dump every valid video as ``<dir>/<utt>.npy`` (uint8
            (T, H, W), loaded much faster than decoding an mp4 every epoch)
            and point ``video.scp`` to it.

    Returns:
        The report written to ``validation.json``: ``num_input``,
        ``num_valid``, ``num_bad``, ``reasons`` (kind -> count) and ``bad``
        (utt -> reason).

    Raises:
        ValueError: Bad arguments, a missing ``text``, no valid utterance, or
            (strict) any bad utterance.
    """
    if exp.modality not in MODALITIES:
        raise ValueError(f"--modality={exp.modality!r}; allowed: {MODALITIES}")
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    if not (in_dir / "text").is_file():
        raise ValueError(f"{in_dir}/text not found")
    texts = read_kv(in_dir / "text", allow_empty_value=True)
    wavs = read_kv(in_dir / "wav.scp") if exp.audio and (in_dir / "wav.scp").is_file() else {}
    videos = (
        read_kv(in_dir / "video.scp") if exp.video and (in_dir / "video.scp").is_file() else {}
    )
    if (in_dir / "utt2spk").is_file():
        utt2spk = read_kv(in_dir / "utt2spk")
    else:
        utt2spk = {u: u for u in texts}
    prior = _read_failed(failed_lists or [])
    uids = sorted(set(texts) | set(wavs) | set(videos))
    dumps: Dict[str, str] = {}
    if video_dump_dir and exp.video:
        Path(video_dump_dir).mkdir(parents=True, exist_ok=True)
        dumps = {u: str(Path(video_dump_dir) / f"{u}.npy") for u in uids if "/" not in u}
    jobs = [
        (u, texts.get(u), wavs.get(u), videos.get(u), exp, prior.get(u), dumps.get(u))
        for u in uids
    ]
    logger.info(
        "Validate: in_dir=%s -> out_dir=%s utterances=%d modality=%s sample_rate=%d "
        "fps=%g frame_size=%d av_tolerance=%d nj=%d",
        in_dir, out_dir, len(uids), exp.modality, exp.sample_rate, exp.fps,
        exp.frame_size, exp.av_tolerance, nj,
    )
    bad: Dict[str, str] = {}
    good: Dict[str, UttInfo] = {}
    start = last = time.monotonic()
    pool = None
    if nj > 1 and len(jobs) > 1:
        pool = multiprocessing.get_context("fork").Pool(nj)
        results = pool.imap_unordered(_job, jobs, chunksize=8)
    else:
        results = map(_job, jobs)
    try:
        for done, (uid, reason, info) in enumerate(results, 1):
            if reason is None and uid not in utt2spk:
                reason = "no speaker: missing in utt2spk"
            if reason is None:
                good[uid] = info
            else:
                bad[uid] = reason
            now = time.monotonic()
            if now - last > 10.0 or done == len(jobs):
                rate = done / max(now - start, 1e-9)
                logger.info("progress done=%d/%d bad=%d rate=%.1f utt/s eta=%.0fs",
                            done, len(jobs), len(bad), rate, (len(jobs) - done) / rate)
                last = now
    finally:
        if pool is not None:
            pool.close()
            pool.join()

    kinds = Counter(r.split(":")[0].split(" (")[0] for r in bad.values())
    for uid in sorted(bad):
        logger.warning("bad utterance utt_id=%s reason=%s", uid, bad[uid])
    report = {
        "in_dir": str(in_dir),
        "modality": exp.modality,
        "num_input": len(uids),
        "num_valid": len(good),
        "num_bad": len(bad),
        "reasons": dict(sorted(kinds.items())),
        "bad": dict(sorted(bad.items())),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    write_if_changed(out_dir / "bad_utts.txt", "".join(f"{u}\t{bad[u]}\n" for u in sorted(bad)))
    write_if_changed(out_dir / "validation.json", json.dumps(report, indent=2) + "\n")
    summary = ", ".join(f"{k}: {v}" for k, v in sorted(kinds.items())) or "none"
    logger.info("Validation done: valid=%d bad=%d (%s) list=%s", len(good), len(bad),
                summary, out_dir / "bad_utts.txt")
    if strict and bad:
        raise ValueError(
            f"{len(bad)} bad utterance(s) in {in_dir} ({summary}); see "
            f"{out_dir / 'bad_utts.txt'} (run with --strict false to exclude them)"
        )
    if not good:
        raise ValueError(f"no valid utterance in {in_dir}; see {out_dir / 'bad_utts.txt'}")
    keep = sorted(good)
    write_kv(out_dir / "text", {u: texts[u] for u in keep})
    write_kv(out_dir / "utt2spk", {u: utt2spk[u] for u in keep})
    write_kv(out_dir / "spk2utt", spk2utt_from_utt2spk({u: utt2spk[u] for u in keep}))
    if exp.audio:
        write_kv(out_dir / "wav.scp", {u: wavs[u] for u in keep})
    if exp.video:
        write_kv(out_dir / "video.scp", {u: dumps.get(u, videos[u]) for u in keep})
    write_kv(out_dir / "utt2dur", {u: f"{good[u].duration:.4f}" for u in keep})
    write_kv(out_dir / "utt2num_frames", {u: str(good[u].num_frames) for u in keep})
    return report


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Validate a data directory (files open, rates, lengths, text) "
        "and write the valid utterances",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--in_dir", required=True, help="Input data directory")
    parser.add_argument("--out_dir", required=True, help="Output data directory")
    parser.add_argument("--modality", required=True, choices=MODALITIES)
    parser.add_argument("--sample_rate", type=int, default=16000, help="Expected Hz")
    parser.add_argument("--fps", type=float, default=25.0, help="Expected frame rate")
    parser.add_argument("--frame_size", type=int, default=96,
                        help="Expected square frame side (0: any)")
    parser.add_argument("--av_tolerance", type=int, default=2,
                        help="Max audio/video length difference (frames)")
    parser.add_argument("--decode_video", type=str2bool, default=True,
                        help="Decode every video completely (catches truncation)")
    parser.add_argument("--video_dump_dir", default=None,
                        help="Dump valid videos as <dir>/<utt>.npy and list those")
    parser.add_argument("--strict", type=str2bool, default=False,
                        help="Fail on any bad utterance instead of excluding it")
    parser.add_argument("--failed_list", action="append", default=[],
                        help="<utt>\\t<reason> file of an earlier stage (repeatable)")
    parser.add_argument("--nj", type=int, default=1, help="Parallel processes")
    parser.add_argument("--log_level", default="INFO",
                        choices=("ERROR", "WARNING", "INFO", "DEBUG"))
    return parser


def main(cmd: Optional[List[str]] = None) -> int:
    args = get_parser().parse_args(cmd)
    setup_logging(args.log_level)
    if args.nj < 1:
        raise ValueError(f"--nj={args.nj} must be >= 1")
    exp = Expectations(
        modality=args.modality,
        sample_rate=args.sample_rate,
        fps=args.fps,
        frame_size=args.frame_size,
        av_tolerance=args.av_tolerance,
        decode_video=args.decode_video,
    )
    try:
        validate_data_dir(args.in_dir, args.out_dir, exp, args.strict, args.nj,
                          args.failed_list, args.video_dump_dir)
    except ValueError as e:
        logger.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
