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

import sys
from pathlib import Path
from typing import List, Optional

from espnet_msrs.data_prep.audio import SAMPLE_RATE, resample_scp
from espnet_msrs.utils.cli import add_job_arguments, failure_status, parse_tool_args, tool_parser


def get_parser():
    """Command-line parser."""
    parser = tool_parser(__doc__)
    parser.add_argument("--wav_scp", required=True, help="<utt_id> <audio path> lines")
    parser.add_argument("--out_dir", required=True, help="Directory of the output wavs")
    parser.add_argument("--out_scp", required=True, help="Output wav.scp")
    parser.add_argument("--sample_rate", type=int, default=SAMPLE_RATE, help="Target rate (Hz)")
    add_job_arguments(parser, failures=True)
    return parser


def main(cmd: Optional[List[str]] = None) -> int:
    """Run the resampler; returns the exit status."""
    args = parse_tool_args(get_parser(), cmd)
    counts = resample_scp(args.wav_scp, args.out_dir, args.out_scp, args.sample_rate,
                          failed_list=args.failed_list, nj=args.nj)
    return failure_status(counts["failed"], args.allow_failures,
                          args.failed_list or Path(args.out_dir) / "failed.txt")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
