#!/usr/bin/env python3
"""The "Test data" section of RESULTS.md (recipe stage 12).

Example::

    python -m espnet_msrs.bin.data_report --test_sets test --valid_set valid \\
        --official_test_sizes "test=1321" --noise train=dump/noise/babble_train.wav \\
        --noise test=dump/noise/babble_test.wav --decode_dir exp/x/decode_y \\
        --out exp/x/decode_y/data_report.md

Per test set: official size, utterances listed at stage 1, kept at stage 3,
decoded; the dropped ones and why (stage 1, stage 3, decoding); a flag when it is (or overlaps) the
validation set; the noise used (:mod:`espnet_msrs.data_prep.data_report`).
"""

import sys
from typing import List, Optional

from espnet_msrs.data_prep.data_report import describe_test_data, parse_sizes
from espnet_msrs.utils.cli import parse_tool_args, tool_parser
from espnet_msrs.utils.data_dir import write_if_changed


def get_parser():
    """Command-line parser."""
    parser = tool_parser(__doc__)
    parser.add_argument("--test_sets", nargs="+", required=True, help="Clean test sets")
    parser.add_argument("--valid_set", required=True, help="Validation set")
    parser.add_argument("--data_root", default="data", help="Stage-1 data directories")
    parser.add_argument("--dump_root", default="dump", help="Holds raw/org/<set>, raw/<set>")
    parser.add_argument("--official_test_sizes", default="", help="'<set>=<n> ...'")
    parser.add_argument("--noise", action="append", default=[],
                        help="<train|test set>=<noise wav> (repeatable)")
    parser.add_argument("--decode_dir", default=None,
                        help="Decoding root: <decode_dir>/<set>/bad_utts.txt (left out at decoding)")
    parser.add_argument("--out", required=True, help="Markdown file written")
    return parser


def main(cmd: Optional[List[str]] = None) -> None:
    """Write the section."""
    args = parse_tool_args(get_parser(), cmd)
    noises = dict(entry.split("=", 1) for entry in args.noise)
    text = describe_test_data(args.test_sets, args.valid_set, args.data_root, args.dump_root,
                             parse_sizes(args.official_test_sizes), noises, args.decode_dir)
    write_if_changed(args.out, text + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
