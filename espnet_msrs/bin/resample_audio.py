#!/usr/bin/env python3
"""Resample the audio of a data directory to 16 kHz mono wavs (stage 2).

Example::

    python -m espnet_msrs.bin.resample_audio --wav_scp data/train/wav.scp \\
        --out_dir dump/audio16000/train --out_scp dump/prep/train/wav.scp --nj 2

Every ``<utt_id> <path>`` (any format libsndfile reads) becomes
``<out_dir>/<utt_id>.wav`` (mono, 16-bit PCM, polyphase resampling); outputs
made from the same source by an earlier run are kept, inputs at other rates
are counted per rate and listed in ``<out_dir>/resampled.txt``, failures in
``--failed_list`` (see :func:`espnet_msrs.data_prep.audio.resample_scp`).
Exit status 1 if any failed, unless ``--allow_failures true``.
"""

import argparse
import logging
import sys
from pathlib import Path
from typing import List, Optional

from espnet2.utils.types import str2bool

from espnet_msrs.data_prep.audio import SAMPLE_RATE, resample_scp
from espnet_msrs.utils.runtime import setup_logging

logger = logging.getLogger(__name__)


def get_parser() -> argparse.ArgumentParser:
    """Command-line parser."""
    parser = argparse.ArgumentParser(
        description="Resample a wav.scp to mono 16-bit wavs at --sample_rate",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--wav_scp", required=True, help="<utt_id> <audio path> lines")
    parser.add_argument("--out_dir", required=True, help="Directory of the output wavs")
    parser.add_argument("--out_scp", required=True, help="Output wav.scp")
    parser.add_argument("--sample_rate", type=int, default=SAMPLE_RATE, help="Target rate (Hz)")
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
    counts = resample_scp(args.wav_scp, args.out_dir, args.out_scp, args.sample_rate,
                          failed_list=args.failed_list, nj=args.nj)
    if counts["failed"] and not args.allow_failures:
        logger.error("%d utterance(s) failed (see %s); pass --allow_failures true to "
                     "continue", counts["failed"],
                     args.failed_list or Path(args.out_dir) / "failed.txt")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
