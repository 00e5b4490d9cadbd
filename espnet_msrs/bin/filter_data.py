#!/usr/bin/env python3
"""Remove too short / too long utterances from a data directory (stage 4).

Example::

    python -m espnet_msrs.bin.filter_data --in_dir dump/raw/org/train \\
        --out_dir dump/raw/train --min_dur 0.3 --max_dur 20

Durations come from ``<in_dir>/utt2dur`` (stage 3); kept utterances are
written with every per-utterance file, removed ones are listed in
``<out_dir>/removed.txt`` with the reason
(:func:`espnet_msrs.utils.data_dir.filter_data_dir`). ``--max_dur inf``
disables the upper limit.
"""

import math
import sys
from typing import List, Optional

from espnet_msrs.utils.cli import parse_tool_args, tool_parser
from espnet_msrs.utils.data_dir import filter_data_dir


def get_parser():
    """Command-line parser."""
    parser = tool_parser(__doc__)
    parser.add_argument("--in_dir", required=True, help="Input data dir (with utt2dur)")
    parser.add_argument("--out_dir", required=True, help="Output data dir")
    parser.add_argument("--min_dur", type=float, default=0.0, help="Seconds")
    parser.add_argument("--max_dur", type=float, default=math.inf, help="Seconds (inf: none)")
    return parser


def main(cmd: Optional[List[str]] = None) -> None:
    """Filter one data directory."""
    args = parse_tool_args(get_parser(), cmd)
    filter_data_dir(args.in_dir, args.out_dir, args.min_dur, args.max_dur)


if __name__ == "__main__":
    main(sys.argv[1:])
