#!/usr/bin/env python3
"""Resample the audio of a data directory to 16 kHz mono wavs (recipe stage 2).

Example::

    python -m espnet_msrs.bin.resample_audio --wav_scp data/train/wav.scp \\
        --out_dir dump/audio16k/train --out_scp dump/audio16k/train/wav.scp --nj 2

Each ``<utt_id> <path>`` of ``--wav_scp`` (any format libsndfile reads) is
mixed down to mono, resampled with a polyphase filter
(``scipy.signal.resample_poly``, exact rational ratio) and written as 16-bit
PCM to ``<out_dir>/<utt_id>.wav``; files already at the target rate are
resampled too (copy), so every output is a plain wav the later stages can
trust. Existing outputs are kept (writes are atomic), ``--out_scp`` is only
rewritten when its content changes, so a second run does nothing.
Unreadable inputs are listed with the reason in ``--failed_list`` (default
``<out_dir>/failed.txt``) and left out of ``--out_scp``; the exit status is 1
if any failed, unless ``--allow_failures true``.
"""

import argparse
import logging
import math
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
import soundfile

from espnet_msrs.utils.runtime import setup_logging
from espnet_msrs.utils.data_dir import read_kv, str2bool, write_if_changed

logger = logging.getLogger(__name__)


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


def _run(job: Tuple[str, str, str, int]) -> Tuple[str, str, Optional[str]]:
    uid, src, out, target = job
    if Path(out).is_file():
        return uid, "skipped", None
    try:
        audio, rate = soundfile.read(src, dtype="float64", always_2d=True)
        if audio.shape[0] == 0:
            return uid, "failed", f"{src}: empty audio"
        y = resample(audio.mean(axis=1), rate, target)
        peak = np.max(np.abs(y)) if y.size else 0.0
        if peak > 1.0:  # polyphase ringing can overshoot full scale
            y = y / peak
        fd, tmp = tempfile.mkstemp(dir=Path(out).parent, prefix=".", suffix=".wav")
        os.close(fd)
        try:
            soundfile.write(tmp, y.astype(np.float32), target, subtype="PCM_16")
            os.replace(tmp, out)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except (RuntimeError, OSError, ValueError, soundfile.LibsndfileError) as e:
        return uid, "failed", f"{src}: {' '.join(str(e).split())}"
    return uid, "written", None


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Resample a wav.scp to mono 16-bit wavs at --sample_rate",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--wav_scp", required=True, help="<utt_id> <audio path> lines")
    parser.add_argument("--out_dir", required=True, help="Directory of the output wavs")
    parser.add_argument("--out_scp", required=True, help="Output wav.scp")
    parser.add_argument("--sample_rate", type=int, default=16000, help="Target rate (Hz)")
    parser.add_argument("--failed_list", default=None,
                        help="Failures with reasons (default: <out_dir>/failed.txt)")
    parser.add_argument("--allow_failures", type=str2bool, default=False,
                        help="Exit 0 even if some utterances failed")
    parser.add_argument("--nj", type=int, default=1, help="Parallel processes")
    parser.add_argument("--log_level", default="INFO",
                        choices=("ERROR", "WARNING", "INFO", "DEBUG"))
    return parser


def main(cmd: Optional[List[str]] = None) -> int:
    """Run the resampler; returns the exit status."""
    args = get_parser().parse_args(cmd)
    setup_logging(args.log_level)
    if args.nj < 1:
        raise ValueError(f"--nj={args.nj} must be >= 1")
    if args.sample_rate <= 0:
        raise ValueError(f"--sample_rate={args.sample_rate} must be > 0")
    wavs = read_kv(args.wav_scp)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for uid, src in wavs.items():
        if src.rstrip().endswith("|"):
            raise ValueError(f"{args.wav_scp}: utt {uid}: piped commands are not supported")
    jobs = [(u, p, str(out_dir / f"{u}.wav"), args.sample_rate) for u, p in wavs.items()]
    logger.info(
        "Resample: wav_scp=%s -> out_dir=%s utterances=%d sample_rate=%d nj=%d",
        args.wav_scp, out_dir, len(jobs), args.sample_rate, args.nj,
    )
    results = {}
    start = last = time.monotonic()
    pool = None
    if args.nj > 1 and len(jobs) > 1:
        pool = multiprocessing.get_context("fork").Pool(args.nj)
        iterator = pool.imap_unordered(_run, jobs, chunksize=4)
    else:
        iterator = map(_run, jobs)
    try:
        for done, (uid, status, reason) in enumerate(iterator, 1):
            results[uid] = (status, reason)
            if status == "failed":
                logger.warning("failed utt_id=%s reason=%s", uid, reason)
            now = time.monotonic()
            if now - last > 10.0 or done == len(jobs):
                rate = done / max(now - start, 1e-9)
                logger.info("progress done=%d/%d rate=%.1f utt/s eta=%.0fs",
                            done, len(jobs), rate, (len(jobs) - done) / rate)
                last = now
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    counts = {"written": 0, "skipped": 0, "failed": 0}
    scp, failed = [], []
    for uid in wavs:
        status, reason = results[uid]
        counts[status] += 1
        if status == "failed":
            failed.append(f"{uid}\t{reason}\n")
        else:
            scp.append(f"{uid} {out_dir / (uid + '.wav')}\n")
    write_if_changed(args.out_scp, "".join(scp))
    failed_list = Path(args.failed_list or out_dir / "failed.txt")
    write_if_changed(failed_list, "".join(failed))
    logger.info(
        "Resample done: written=%d skipped=%d failed=%d elapsed=%.1fs out_scp=%s",
        counts["written"], counts["skipped"], counts["failed"],
        time.monotonic() - start, args.out_scp,
    )
    if counts["failed"] and not args.allow_failures:
        logger.error("%d utterance(s) failed (see %s); pass --allow_failures true "
                     "to continue", counts["failed"], failed_list)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
