#!/usr/bin/env python3
"""Write the babble noise of stage 6: a recording (NOISEX-92) or synthetic babble.

Examples::

    # NOISEX-92 babble (any format and rate) -> 16 kHz mono wav
    python -m espnet_msrs.bin.make_babble --recording /data/noisex/babble.wav \\
        --out dump/noise/babble_train.wav
    # synthetic babble: 30 random utterances of the training set summed
    python -m espnet_msrs.bin.make_babble --wav_scp dump/raw/train/wav.scp \\
        --out dump/noise/babble_train.wav --num_utts 30 --seed 0

A ``<out>.json`` sidecar says what the noise is (RESULTS.md names it); an
existing output is kept while it matches the request
(:mod:`espnet_msrs.data_prep.noise`).
"""

import sys
from typing import List, Optional

from espnet_msrs.data_prep.noise import describe_noise, make_babble, prepare_recording
from espnet_msrs.utils.cli import LOG_LEVELS, parse_tool_args, tool_parser


def get_parser():
    """Command-line parser."""
    parser = tool_parser(__doc__)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--recording", help="Noise recording (e.g. NOISEX-92 babble)")
    source.add_argument("--wav_scp", help="Utterances to sum (Kaldi-style wav.scp)")
    parser.add_argument("--out", required=True, help="Output wav")
    parser.add_argument("--num_utts", type=int, default=30, help="Utterances summed")
    parser.add_argument("--seed", type=int, default=0, help="Random seed")
    parser.add_argument("--sample_rate", type=int, default=16000, help="Hz")
    parser.add_argument("--log_level", default="INFO", choices=LOG_LEVELS)
    return parser


def main(cmd: Optional[List[str]] = None) -> None:
    """Write the noise and log what it is."""
    args = parse_tool_args(get_parser(), cmd)
    if args.recording:
        out = prepare_recording(args.recording, args.out, args.sample_rate)
    else:
        out = make_babble(args.wav_scp, args.out, args.num_utts, args.seed, args.sample_rate)
    print(describe_noise(out))


if __name__ == "__main__":
    main(sys.argv[1:])
