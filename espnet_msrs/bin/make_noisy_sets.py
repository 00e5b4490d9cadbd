#!/usr/bin/env python3
"""Noisy copies of a test set: babble noise at fixed SNRs (recipe stage 6).

Example::

    python -m espnet_msrs.bin.make_noisy_sets --data_dir dump/raw/test \\
        --noise dump/noise/babble_test.wav --snrs -7.5 -2.5 2.5 7.5 12.5 \\
        --out_data_prefix dump/raw/test_snr --out_wav_prefix dump/noisy/test_snr

For every SNR ``s`` it writes the data directory ``<out_data_prefix><s>``
whose ``wav.scp`` lists the utterances mixed with the noise at exactly ``s``
dB (see :func:`espnet_msrs.data_prep.noise.make_noisy_sets`). Mixtures made
from the same speech, noise and seed by an earlier run are kept.
"""

import sys
from typing import List, Optional

from espnet_msrs.data_prep.noise import make_noisy_sets
from espnet_msrs.utils.cli import add_job_arguments, parse_tool_args, tool_parser


def get_parser():
    """Command-line parser."""
    parser = tool_parser(__doc__)
    parser.add_argument("--data_dir", required=True, help="Clean data dir (wav.scp, text, ...)")
    parser.add_argument("--noise", required=True, help="Noise wav (same sample rate)")
    parser.add_argument("--snrs", type=float, nargs="+",
                        default=[-7.5, -2.5, 2.5, 7.5, 12.5], help="SNRs in dB")
    parser.add_argument("--out_data_prefix", required=True,
                        help="Output data dirs are <prefix><SNR>")
    parser.add_argument("--out_wav_prefix", required=True,
                        help="Mixed wavs go to <prefix><SNR>/<utt>.wav")
    parser.add_argument("--seed", type=int, default=0, help="Noise-offset seed")
    add_job_arguments(parser)
    return parser


def main(cmd: Optional[List[str]] = None) -> None:
    """Write the noisy sets."""
    args = parse_tool_args(get_parser(), cmd)
    make_noisy_sets(args.data_dir, args.noise, args.snrs, args.out_data_prefix,
                    args.out_wav_prefix, args.seed, args.nj)


if __name__ == "__main__":
    main(sys.argv[1:])
