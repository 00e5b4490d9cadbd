#!/usr/bin/env python3
"""Noisy copies of a test set: babble noise at fixed SNRs (recipe stage 6).

Example::

    python -m espnet_msrs.bin.make_noisy_sets --data_dir dump/raw/test \\
        --noise dump/noise/babble_test.wav --snrs -7.5 -2.5 2.5 7.5 12.5 \\
        --out_data_prefix dump/raw/test_snr --out_wav_prefix dump/noisy/test_snr

For every SNR ``s`` it writes the data directory ``<out_data_prefix><s>``
(e.g. ``dump/raw/test_snr-7.5``): a copy of ``--data_dir`` (text, utt2spk,
spk2utt, video.scp, utt2dur, …) whose ``wav.scp`` points to
``<out_wav_prefix><s>/<utt>.wav``, the utterance mixed with the noise by
:func:`espnet_msrs.train.av_preprocessor.mix_at_snr` at exactly ``s`` dB
(power over the whole utterance). The noise segment of an utterance is
chosen by a generator seeded with ``(seed, crc32(utt_id))``, the same for
every SNR, so the sets are deterministic and differ only in the noise level.
Mixtures are written as 32-bit float wavs (no clipping; the SNR is exact).
Existing wavs are kept, so a re-run does nothing.
"""

import argparse
import logging
import multiprocessing
import os
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import soundfile

from espnet_msrs.utils.runtime import setup_logging
from espnet_msrs.utils.data_dir import read_kv, subset_data_dir

logger = logging.getLogger(__name__)
_NOISE: Dict[str, np.ndarray] = {}


def snr_name(snr: float) -> str:
    """Directory suffix of an SNR: -7.5 -> "-7.5", 5.0 -> "5"."""
    return f"{snr:g}"


def utterance_rng(seed: int, uid: str) -> np.random.Generator:
    """The generator choosing an utterance's noise segment (same for every SNR)."""
    return np.random.default_rng([seed, zlib.crc32(uid.encode("utf-8"))])


def load_noise(path: str, sample_rate: int) -> np.ndarray:
    """Mono float64 noise at ``sample_rate``.

    Raises:
        ValueError: Missing file, other sample rate, or silent noise.
    """
    if not Path(path).is_file():
        raise ValueError(f"--noise {path}: no such file")
    noise, rate = soundfile.read(path, dtype="float64", always_2d=True)
    if rate != sample_rate:
        raise ValueError(f"--noise {path}: {rate} Hz, the speech is {sample_rate} Hz")
    noise = noise.mean(axis=1)
    if not np.any(noise):
        raise ValueError(f"--noise {path} is silent")
    return noise


def _mix_one(job: Tuple[str, str, str, List[Tuple[float, str]], int]) -> Tuple[str, int]:
    from espnet_msrs.train.av_preprocessor import mix_at_snr  # imported by the parent

    uid, wav, noise_path, outs, seed = job
    todo = [(snr, out) for snr, out in outs if not Path(out).is_file()]
    if not todo:
        return uid, 0
    speech, rate = soundfile.read(wav, dtype="float64", always_2d=True)
    speech = speech.mean(axis=1)
    if noise_path not in _NOISE:
        _NOISE[noise_path] = load_noise(noise_path, rate)
    for snr, out in todo:
        mixed = mix_at_snr(speech, _NOISE[noise_path], snr, utterance_rng(seed, uid))
        fd, tmp = tempfile.mkstemp(dir=Path(out).parent, prefix=".", suffix=".wav")
        os.close(fd)
        try:
            soundfile.write(tmp, mixed.astype(np.float32), rate, subtype="FLOAT")
            os.replace(tmp, out)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return uid, len(todo)


def make_noisy_sets(
    data_dir: str,
    noise: str,
    snrs: Sequence[float],
    out_data_prefix: str,
    out_wav_prefix: str,
    seed: int = 0,
    nj: int = 1,
) -> List[Path]:
    """Write one noisy copy of ``data_dir`` per SNR (see the module docstring).

    Returns:
        The written data directories, in the order of ``snrs``.
    """
    if not snrs:
        raise ValueError("--snrs: give at least one SNR")
    if len(set(snr_name(s) for s in snrs)) != len(snrs):
        raise ValueError(f"--snrs {list(snrs)} has duplicates")
    data_dir = Path(data_dir)
    wavs = read_kv(data_dir / "wav.scp")
    out_dirs, wav_tables = [], {}
    for snr in snrs:
        wav_dir = Path(f"{out_wav_prefix}{snr_name(snr)}")
        wav_dir.mkdir(parents=True, exist_ok=True)
        wav_tables[snr] = {u: str(wav_dir / f"{u}.wav") for u in wavs}
    jobs = [
        (u, w, noise, [(s, wav_tables[s][u]) for s in snrs], seed) for u, w in wavs.items()
    ]
    logger.info(
        "Noisy sets: data_dir=%s noise=%s snrs=%s -> %s<SNR> utterances=%d nj=%d",
        data_dir, noise, " ".join(snr_name(s) for s in snrs), out_data_prefix, len(jobs), nj,
    )
    load_noise(noise, soundfile.info(next(iter(wavs.values()))).samplerate)
    # Import once here (it imports espnet2): forked workers inherit it.
    import espnet_msrs.train.av_preprocessor  # noqa: F401
    start = last = time.monotonic()
    pool = None
    if nj > 1 and len(jobs) > 1:
        pool = multiprocessing.get_context("fork").Pool(nj)
        results = pool.imap_unordered(_mix_one, jobs, chunksize=8)
    else:
        results = map(_mix_one, jobs)
    written = 0
    try:
        for done, (_, n) in enumerate(results, 1):
            written += n
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
    for snr in snrs:
        out = Path(f"{out_data_prefix}{snr_name(snr)}")
        subset_data_dir(data_dir, out, list(wavs), replace={"wav.scp": wav_tables[snr]})
        out_dirs.append(out)
    logger.info("Noisy sets done: written_wavs=%d dirs=%s", written,
                " ".join(str(d) for d in out_dirs))
    return out_dirs


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Mix babble noise into a test set at fixed SNRs",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--data_dir", required=True, help="Clean data dir (wav.scp, text, ...)")
    parser.add_argument("--noise", required=True, help="Noise wav (same sample rate)")
    parser.add_argument("--snrs", type=float, nargs="+",
                        default=[-7.5, -2.5, 2.5, 7.5, 12.5], help="SNRs in dB")
    parser.add_argument("--out_data_prefix", required=True,
                        help="Output data dirs are <prefix><SNR>")
    parser.add_argument("--out_wav_prefix", required=True,
                        help="Mixed wavs go to <prefix><SNR>/<utt>.wav")
    parser.add_argument("--seed", type=int, default=0, help="Noise-offset seed")
    parser.add_argument("--nj", type=int, default=1, help="Parallel processes")
    return parser


def main(cmd: Optional[List[str]] = None) -> None:
    setup_logging(logging.INFO)
    args = get_parser().parse_args(cmd)
    make_noisy_sets(args.data_dir, args.noise, args.snrs, args.out_data_prefix,
                    args.out_wav_prefix, args.seed, args.nj)


if __name__ == "__main__":
    main(sys.argv[1:])
