"""Audio for the recipes: decode, resample, write (stages 1 and 2).

* :func:`extract_audio` — the first audio stream of a media file (mp4/AAC,
  m4a, flac, …) decoded with PyAV, mixed to mono, resampled to 16 kHz; it
  also returns the source rate so that preparations can count resamplings.
* :func:`resample` — polyphase resampling with an exact rational ratio.
* :func:`write_wav` — 16-bit PCM wav, atomically.
* :func:`resample_scp` — stage 2: every ``<uid> <path>`` of a ``wav.scp`` to
  a mono 16-bit wav at the target rate, with counts per source rate in the
  log, the resampled ones listed, and outputs remade when their source
  changed (:class:`~espnet_msrs.data_prep.output_sources.OutputSources`).
"""

import logging
import math
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np

from espnet_msrs.data_prep.output_sources import OutputSources, source_signature
from espnet_msrs.utils import atomic
from espnet_msrs.utils.data_dir import read_kv, write_if_changed, write_report
from espnet_msrs.utils.parallel import parallel_map

PathLike = Union[str, os.PathLike]
logger = logging.getLogger(__name__)

#: Audio sample rate of every wav the recipes write (DESIGN §3).
SAMPLE_RATE = 16000


def extract_audio(path: PathLike, rate: int = SAMPLE_RATE) -> Tuple[np.ndarray, int]:
    """Decode the first audio stream of a media file to mono float32 at ``rate``.

    Args:
        path: mp4 / m4a / wav / flac … (anything FFmpeg decodes).
        rate: Output sample rate.

    Returns:
        (N,) float32 in [-1, 1], and the stream's own sample rate.

    Raises:
        ValueError: No audio stream, undecodable or empty audio (names the file).
    """
    import av

    chunks: List[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise ValueError(f"{path}: no audio stream")
            stream = container.streams.audio[0]
            source_rate = int(stream.rate or stream.codec_context.sample_rate or 0)
            resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    except ValueError:
        raise
    except (av.FFmpegError, OSError, EOFError) as e:
        raise ValueError(f"{path}: cannot decode audio ({e})") from e
    if not chunks or sum(len(c) for c in chunks) == 0:
        raise ValueError(f"{path}: empty audio stream")
    return np.concatenate(chunks).astype(np.float32), source_rate


def resample(audio: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Resample (N,) float audio from ``rate`` to ``target`` Hz (polyphase).

    Returns:
        (round(N · target / rate),) float64.
    """
    if rate == target:
        return audio.astype(np.float64)
    from scipy.signal import resample_poly

    g = math.gcd(int(rate), int(target))
    out = resample_poly(audio.astype(np.float64), target // g, rate // g)
    n = int(round(len(audio) * target / rate))
    if len(out) < n:
        out = np.pad(out, (0, n - len(out)))
    return out[:n]


def write_wav(path: PathLike, audio: np.ndarray, rate: int = SAMPLE_RATE) -> Path:
    """Write mono float audio in [-1, 1] as 16-bit PCM wav, atomically."""
    import soundfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic.atomic_path(path) as tmp:
        soundfile.write(
            tmp,
            np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0),
            rate,
            subtype="PCM_16",
            format="WAV",
        )
    return path


def rate_summary(rates: Counter, target: int) -> str:
    """``"16000 Hz: 1300, 8000 Hz: 2 (resampled)"`` (most frequent first, the
    target rate first among equals)."""
    parts = []
    for rate, count in sorted(rates.items(), key=lambda kv: (-kv[1], kv[0] != target, kv[0])):
        mark = "" if rate == target else " (resampled)"
        parts.append(f"{rate} Hz: {count}{mark}")
    return ", ".join(parts) or "none"


@dataclass(frozen=True)
class _ResampleJob:
    uid: str
    src: str
    out: str
    target: int


def _resample_one(job: _ResampleJob) -> Tuple[str, Optional[int], Optional[str]]:
    """(status, source rate, reason) of one file: ``written`` or ``failed``."""
    import soundfile

    try:
        audio, rate = soundfile.read(job.src, dtype="float64", always_2d=True)
        if audio.shape[0] == 0:
            return "failed", None, f"{job.src}: empty audio"
        y = resample(audio.mean(axis=1), rate, job.target)
        peak = np.max(np.abs(y)) if y.size else 0.0
        if peak > 1.0:  # polyphase ringing can overshoot full scale
            y = y / peak
        with atomic.atomic_path(job.out) as tmp:
            soundfile.write(tmp, y.astype(np.float32), job.target, subtype="PCM_16")
    except (RuntimeError, OSError, ValueError, soundfile.LibsndfileError) as e:
        return "failed", None, f"{job.src}: {' '.join(str(e).split())}"
    return "written", int(rate), None


def resample_scp(
    wav_scp: PathLike,
    out_dir: PathLike,
    out_scp: PathLike,
    sample_rate: int = SAMPLE_RATE,
    failed_list: Optional[PathLike] = None,
    nj: int = 1,
) -> Dict[str, int]:
    """Resample every file of ``wav_scp`` to ``<out_dir>/<uid>.wav``.

    Each input (any format libsndfile reads) is mixed to mono, resampled
    (:func:`resample`; a copy at the target rate) and written as 16-bit PCM.
    Outputs made from the same source and rate by an earlier run are kept.
    Unreadable inputs are listed with the reason in ``failed_list`` (default
    ``<out_dir>/failed.txt``) and left out of ``out_scp``; inputs at another
    rate are counted per rate in the log and listed in
    ``<out_dir>/resampled.txt`` (``<uid>\\t<rate>\\t<source>``).

    Returns:
        Counts: ``written``, ``kept``, ``failed``, ``resampled``.

    Raises:
        ValueError: A piped command in ``wav_scp``, or a bad rate.
    """
    if sample_rate <= 0:
        raise ValueError(f"--sample_rate={sample_rate} must be > 0")
    wavs = read_kv(wav_scp)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for uid, src in wavs.items():
        if src.rstrip().endswith("|"):
            raise ValueError(f"{wav_scp}: utt {uid}: piped commands are not supported")
    ledger = OutputSources(out_dir)
    outputs = {u: str(out_dir / f"{u}.wav") for u in wavs}
    signatures = {u: source_signature([src], f"rate={sample_rate}") for u, src in wavs.items()}
    rates: Counter = Counter()
    source_rate: Dict[str, int] = {}
    jobs = []
    for uid, src in wavs.items():
        if ledger.is_current(uid, outputs[uid], signatures[uid]):
            source_rate[uid] = int(ledger.note(uid) or sample_rate)
        else:
            jobs.append(_ResampleJob(uid, src, outputs[uid], sample_rate))
    logger.info(
        "Resample: wav_scp=%s -> out_dir=%s utterances=%d to_write=%d sample_rate=%d nj=%d",
        wav_scp, out_dir, len(wavs), len(jobs), sample_rate, nj,
    )

    def _report(job: _ResampleJob, result) -> None:
        if result[0] == "failed":
            logger.warning("failed utt_id=%s reason=%s", job.uid, result[2])

    results = parallel_map(
        _resample_one, jobs, nj=nj, what="utterances", chunksize=4, on_result=_report
    )
    failed: List[Tuple[str, str]] = []
    for job, (status, rate, reason) in zip(jobs, results):
        if status == "failed":
            failed.append((job.uid, reason))
            ledger.forget(job.uid)
            Path(job.out).unlink(missing_ok=True)  # an older output of another source
        else:
            source_rate[job.uid] = rate
            ledger.record(job.uid, signatures[job.uid], str(rate))
    ledger.save(keep=source_rate)
    rates.update(source_rate.values())
    resampled = {u: r for u, r in source_rate.items() if r != sample_rate}
    write_if_changed(
        out_dir / "resampled.txt",
        "".join(f"{u}\t{resampled[u]}\t{wavs[u]}\n" for u in sorted(resampled)),
    )
    write_if_changed(
        out_scp, "".join(f"{u} {outputs[u]}\n" for u in wavs if u in source_rate)
    )
    failed_path = Path(failed_list or out_dir / "failed.txt")
    write_report(failed_path, failed)
    counts = {
        "written": len(jobs) - len(failed),
        "kept": len(wavs) - len(jobs),
        "failed": len(failed),
        "resampled": len(resampled),
    }
    logger.info(
        "Resample done: written=%d skipped=%d failed=%d out_scp=%s; source rates: %s",
        counts["written"], counts["kept"], counts["failed"], out_scp,
        rate_summary(rates, sample_rate),
    )
    if resampled:
        logger.warning(
            "%d utterance(s) were not at %d Hz and were resampled (listed in %s)",
            len(resampled), sample_rate, out_dir / "resampled.txt",
        )
    return counts
