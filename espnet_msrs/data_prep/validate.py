"""Validate and format a data directory (recipe stage 3).

Every utterance of ``<in_dir>/text`` is checked:

* the transcript exists, is valid UTF-8 and is not empty;
* audio (modality ``audio``/``av``): listed in ``wav.scp``, the file exists,
  opens and decodes completely, is mono with the expected rate and not
  empty; a wav whose header promises more samples than the file holds
  (a truncated copy) is caught even in audio-only mode;
* video (modality ``video``/``av``): listed in ``video.scp``, the file exists
  and decodes completely (a truncated file is caught), has the expected
  frame rate and square frames of the expected size;
* audio and video (``av``): their lengths agree within ``av_tolerance``
  frames (audio frames = ceil(samples · fps / sample_rate)).

Bad utterances go to ``<out_dir>/bad_utts.txt`` (``<utt_id>\\t<reason>``;
the reason of an earlier stage's failure is carried over) and are left out;
each kind of problem is logged once with its count and an example, and the
counts go to ``<out_dir>/validation.json``. Output (Kaldi style, sorted):
``text``, ``utt2spk``, ``spk2utt``, ``wav.scp``/``video.scp``, ``utt2dur``
(seconds) and ``utt2num_frames`` (frames at ``fps``); optionally the decoded
videos as ``.npy`` (decoding an mp4 costs more than a tiny model's step).
"""

import json
import logging
import math
import os
import re
import struct
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

from espnet_msrs.utils import atomic
from espnet_msrs.utils.data_dir import (
    decode_line,
    read_kv,
    read_report,
    spk2utt_from_utt2spk,
    write_if_changed,
    write_kv,
    write_report,
)
from espnet_msrs.utils.parallel import parallel_map

PathLike = Union[str, os.PathLike]
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


def wav_truncation(path: PathLike) -> Optional[str]:
    """Why a RIFF/WAVE file holds fewer sample bytes than its header says.

    Decoders (libsndfile included) silently return what is there, so a wav
    cut to half reads as a valid, shorter utterance. Headers that leave the
    size open (0 or 0xFFFFFFFF, written by streaming tools) are accepted.

    Returns:
        The reason, or None for a complete file (or one that is not RIFF/WAVE).
    """
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        offset = 12
        while offset + 8 <= size:
            f.seek(offset)
            chunk_id, chunk_size = struct.unpack("<4sI", f.read(8))
            if chunk_id == b"data":
                if chunk_size in (0, 0xFFFFFFFF):
                    return None
                held = size - offset - 8
                if held < chunk_size:
                    return (
                        f"truncated audio {path}: the header declares {chunk_size} bytes "
                        f"of samples, the file holds {held}"
                    )
                return None
            offset += 8 + chunk_size + (chunk_size & 1)
    return f"truncated audio {path}: no data chunk before the end of the file"


def check_audio(path: str, exp: Expectations) -> Tuple[Optional[str], int]:
    """Open and check one audio file.

    Returns:
        (reason or None, number of samples).
    """
    import soundfile

    if not Path(path).is_file():
        return f"missing audio file {path}", 0
    try:
        truncated = wav_truncation(path)
        if truncated:
            return truncated, 0
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
    import numpy as np

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
        with atomic.atomic_open(dump_to, "wb") as f:
            np.save(f, frames)
    return None, int(num)


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
    why = f" ({prior_failure})" if prior_failure else ""
    if exp.audio:
        if wav is None:
            return f"no audio entry in wav.scp{why}", None
        reason, samples = check_audio(wav, exp)
        if reason:
            return reason, None
    if exp.video:
        if video is None:
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
        return None, UttInfo(samples / exp.sample_rate, frames if exp.video else audio_frames)
    return None, UttInfo(frames / exp.fps, frames)


def _job(args) -> Tuple[Optional[str], Optional[UttInfo]]:
    return check_utterance(*args)


def read_texts(path: PathLike) -> Tuple[Dict[str, str], Dict[str, str]]:
    """A Kaldi ``text`` file that may hold undecodable lines.

    Returns:
        (uid -> transcript, uid -> reason for each line that is not UTF-8;
        the reason names the file and line).
    """
    texts: Dict[str, str] = {}
    bad: Dict[str, str] = {}
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = decode_line(raw, path, lineno)
            except ValueError as e:
                uid = raw.split(maxsplit=1)[0].decode("utf-8", "replace") if raw.strip() else ""
                bad[uid] = f"text not valid UTF-8: {e}"
                continue
            parts = line.strip().split(maxsplit=1)
            if parts:
                texts[parts[0]] = parts[1] if len(parts) > 1 else ""
    return texts, bad


#: A word that is (part of) a path: absolute, two separators, or a file name.
_PATH_WORD = re.compile(r"^[/\\~]|[/\\].*[/\\]|\.[A-Za-z][A-Za-z0-9]{1,3}[,;]?$")
_TRAILING = {"in", "of", "at", "for", "from"}


def problem_kind(reason: str) -> str:
    """The kind of a bad-utterance reason, without the file it names, so that
    reasons count per kind: ``"missing video file /a/b.mp4"`` -> ``"missing
    video file"``, ``"corrupt video /a/b.mp4: moov atom not found"`` ->
    ``"corrupt video"``, ``"/a/b.txt: empty transcript"`` -> ``"empty
    transcript"``, ``"2 audio channels in /a/b.wav, expected mono"`` ->
    ``"2 audio channels"``.

    The first ``": "``-separated part that says something besides a path,
    up to its first path-like word (or ``" ("``), trailing prepositions cut.
    """
    for part in reason.split(": "):
        words = []
        for word in part.split(" (")[0].split():
            if _PATH_WORD.search(word):
                break
            words.append(word)
        while words and words[-1] in _TRAILING:
            words.pop()
        if words:
            return " ".join(words).rstrip(",;")
    return reason.strip()


def log_problem_kinds(
    bad: Dict[str, str], listed_in: PathLike, what: str, reported: Sequence[str] = ()
) -> Counter:
    """One log line per kind of problem: count, an example and where all are
    listed; a warning, unless every utterance of the kind was ``reported``
    (warned about) by an earlier stage already."""
    kinds: Counter = Counter()
    example: Dict[str, str] = {}
    new: Counter = Counter()
    for uid in sorted(bad):
        kind = problem_kind(bad[uid])
        kinds[kind] += 1
        new[kind] += uid not in reported
        example.setdefault(kind, f"{uid}: {bad[uid]}")
        logger.debug("%s utt_id=%s reason=%s", what, uid, bad[uid])
    for kind, count in sorted(kinds.items()):
        level = logging.WARNING if new[kind] else logging.INFO
        logger.log(level, "%d %s utterance(s): %s (e.g. %s); all listed in %s%s",
                   count, what, kind, example[kind], listed_in,
                   "" if new[kind] else " (reported by an earlier stage)")
    return kinds


def validate_data_dir(
    in_dir: PathLike,
    out_dir: PathLike,
    exp: Expectations,
    strict: bool = False,
    nj: int = 1,
    failed_lists: Optional[Sequence[PathLike]] = None,
    video_dump_dir: Optional[PathLike] = None,
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
            (T, H, W)) and point ``video.scp`` to it.

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
    if nj < 1:
        raise ValueError(f"--nj={nj} must be >= 1")
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    if not (in_dir / "text").is_file():
        raise ValueError(f"{in_dir}/text not found")
    texts, undecodable = read_texts(in_dir / "text")
    wavs = read_kv(in_dir / "wav.scp") if exp.audio and (in_dir / "wav.scp").is_file() else {}
    videos = (
        read_kv(in_dir / "video.scp") if exp.video and (in_dir / "video.scp").is_file() else {}
    )
    if (in_dir / "utt2spk").is_file():
        utt2spk = read_kv(in_dir / "utt2spk")
    else:
        utt2spk = {u: u for u in texts}
    prior: Dict[str, str] = {}
    for path in failed_lists or []:
        for uid, reason in read_report(path).items():
            prior.setdefault(uid, reason or "failed at stage 2")
    uids = sorted(set(texts) | set(wavs) | set(videos) | set(undecodable))
    dumps: Dict[str, str] = {}
    if video_dump_dir and exp.video:
        Path(video_dump_dir).mkdir(parents=True, exist_ok=True)
        dumps = {u: str(Path(video_dump_dir) / f"{u}.npy") for u in uids if "/" not in u}
    bad: Dict[str, str] = dict(undecodable)
    todo = [u for u in uids if u not in bad]
    jobs = [
        (u, texts.get(u), wavs.get(u), videos.get(u), exp, prior.get(u), dumps.get(u))
        for u in todo
    ]
    logger.info(
        "Validate: in_dir=%s -> out_dir=%s utterances=%d modality=%s sample_rate=%d "
        "fps=%g frame_size=%d av_tolerance=%d nj=%d",
        in_dir, out_dir, len(uids), exp.modality, exp.sample_rate, exp.fps,
        exp.frame_size, exp.av_tolerance, nj,
    )
    good: Dict[str, UttInfo] = {}
    for uid, (reason, info) in zip(
        todo, parallel_map(_job, jobs, nj=nj, what="utterances", chunksize=8)
    ):
        if reason is None and uid not in utt2spk:
            reason = "no speaker: missing in utt2spk"
        if reason is None:
            good[uid] = info
        else:
            bad[uid] = reason
    out_dir.mkdir(parents=True, exist_ok=True)
    write_report(out_dir / "bad_utts.txt", bad.items())
    kinds = log_problem_kinds(bad, out_dir / "bad_utts.txt", "bad",
                              reported=[u for u in bad if u in prior])
    report = {
        "in_dir": str(in_dir),
        "modality": exp.modality,
        "num_input": len(uids),
        "num_valid": len(good),
        "num_bad": len(bad),
        "reasons": dict(sorted(kinds.items())),
        "bad": dict(sorted(bad.items())),
    }
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
    keep: List[str] = sorted(good)
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
