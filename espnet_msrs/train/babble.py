"""Babble noise for training-time noise augmentation (DESIGN.md §3).

Babble noise is the sum of ``num_utts`` randomly chosen training utterances,
each normalised to unit RMS and cyclically tiled to the length of the longest
one. The result is peak-normalised to 0.9 and written once as a 16-bit wav;
:class:`espnet_msrs.train.av_preprocessor.AVPreprocessor` mixes it into the
training speech at random SNRs.

CLI::

    python -m espnet_msrs.train.babble --wav_scp data/train/wav.scp \\
        --out dump/babble.wav --num_utts 30 --seed 0
"""

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import List, Optional, Sequence, Union

import numpy as np
import soundfile

from espnet_msrs.utils.runtime import setup_logging

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

#: Peak amplitude of the written babble (the level is irrelevant: the noise is
#: rescaled to the requested SNR when mixed).
PEAK = 0.9


def read_wav_scp(wav_scp: PathLike) -> List[str]:
    """Paths of a Kaldi-style ``wav.scp`` (``<uttid> <path>`` per line).

    Raises:
        ValueError: A malformed line or a piped command (``... |``), naming
            the file and the line number.
    """
    paths = []
    with open(wav_scp, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            fields = line.split(maxsplit=1)
            if len(fields) != 2:
                raise ValueError(
                    f"{wav_scp}:{lineno}: malformed line {line!r}; "
                    f"expected '<uttid> <path>'"
                )
            if fields[1].endswith("|"):
                raise ValueError(
                    f"{wav_scp}:{lineno}: piped commands are not supported, "
                    f"got {fields[1]!r}; use a formatted wav.scp (e.g. dump/raw)"
                )
            paths.append(fields[1])
    return paths


def _read_unit_rms(path: str, sample_rate: int) -> Optional[np.ndarray]:
    """Read a mono wav normalised to unit RMS; None if it is silent."""
    try:
        audio, rate = soundfile.read(path, dtype="float64", always_2d=True)
    except (RuntimeError, OSError) as e:  # soundfile raises LibsndfileError
        raise ValueError(f"make_babble: cannot read {path}: {e}") from e
    if rate != sample_rate:
        raise ValueError(
            f"make_babble: {path} has sample rate {rate} Hz, "
            f"expected sample_rate={sample_rate}"
        )
    audio = audio.mean(axis=1)
    rms = float(np.sqrt(np.mean(audio**2))) if audio.size else 0.0
    if rms <= 0.0:
        logger.warning(f"make_babble: skipping silent utterance path={path}")
        return None
    return audio / rms


def make_babble(
    wav_paths: Sequence[PathLike],
    out_path: PathLike,
    num_utts: int = 30,
    seed: int = 0,
    sample_rate: int = 16000,
) -> Path:
    """Write a babble-noise wav (once).

    Args:
        wav_paths: Candidate utterances (wav/flac at ``sample_rate``).
        out_path: Output wav. If it exists it is kept as it is.
        num_utts: Number of utterances to sum (drawn without replacement).
        seed: Seed of the utterance choice.
        sample_rate: Required sample rate of the inputs and of the output.

    Returns:
        ``out_path``. The file is mono 16-bit PCM, as long as the longest
        chosen utterance, written atomically (temporary file + rename).

    Raises:
        ValueError: ``num_utts < 1``, fewer candidates than ``num_utts``, an
            input with another sample rate, or only silent inputs.
    """
    out_path = Path(out_path)
    if out_path.exists():
        logger.info(f"Babble noise exists, skipping: path={out_path}")
        return out_path
    if num_utts < 1:
        raise ValueError(f"make_babble: num_utts must be >= 1, got {num_utts}")
    if len(wav_paths) < num_utts:
        raise ValueError(
            f"make_babble: num_utts={num_utts} but only {len(wav_paths)} "
            f"utterances were given"
        )
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(wav_paths), size=num_utts, replace=False)
    signals = [_read_unit_rms(str(wav_paths[i]), sample_rate) for i in chosen]
    signals = [s for s in signals if s is not None]
    if not signals:
        raise ValueError("make_babble: all chosen utterances are silent")
    length = max(s.shape[0] for s in signals)
    babble = np.zeros(length, dtype=np.float64)
    for s in signals:
        babble += np.resize(s, length)
    babble *= PEAK / max(np.max(np.abs(babble)), 1e-12)

    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        dir=out_path.parent, prefix=f".{out_path.stem}.", suffix=".tmp.wav"
    )
    os.close(fd)
    try:
        soundfile.write(tmp_name, babble, sample_rate, subtype="PCM_16", format="WAV")
        os.replace(tmp_name, out_path)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    logger.info(
        f"Wrote babble noise: path={out_path} num_utts={len(signals)} "
        f"seconds={length / sample_rate:.2f} seed={seed}"
    )
    return out_path


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Make a babble-noise wav from random training utterances.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--wav_scp", required=True, help="Kaldi-style wav.scp")
    parser.add_argument("--out", required=True, help="Output wav")
    parser.add_argument("--num_utts", type=int, default=30, help="Utterances summed")
    parser.add_argument("--seed", type=int, default=0, help="Random seed")
    parser.add_argument("--sample_rate", type=int, default=16000, help="Hz")
    parser.add_argument(
        "--log_level",
        default="INFO",
        choices=("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"),
    )
    return parser


def main(cmd: Optional[Sequence[str]] = None) -> None:
    args = get_parser().parse_args(cmd)
    setup_logging(args.log_level)
    make_babble(
        read_wav_scp(args.wav_scp),
        args.out,
        num_utts=args.num_utts,
        seed=args.seed,
        sample_rate=args.sample_rate,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
