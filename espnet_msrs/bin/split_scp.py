#!/usr/bin/env python3
"""Split a Kaldi-style scp/text file into N parts and merge parts back.

The recipe's parallel jobs (collect stats at stage 7, decoding at stage 11)
need what Kaldi's ``utils/split_scp.pl`` and ``cat | sort`` do; Kaldi's utils
are not part of ESPnet's pip package, so this tool does it::

    python -m espnet_msrs.bin.split_scp split --in dump/raw/test/text \\
        --out_pattern exp/x/logdir/keys.JOB.scp --num 4 --keys_only true
    python -m espnet_msrs.bin.split_scp merge \\
        --inputs exp/x/logdir/output.{1,2,3,4}/1best_recog/text \\
        --out exp/x/decode/test/text --expect_keys dump/raw/test/text \\
        --left_out exp/x/logdir/output.{1,2,3,4}/bad_utts.txt \\
        --left_out_out exp/x/decode/test/bad_utts.txt

Keys that a job left out on purpose and listed with the reason
(``--left_out``: the decoding jobs' ``bad_utts.txt``) are expected to be
absent; they are collected into ``--left_out_out``
(:func:`espnet_msrs.utils.data_dir.split_file` / ``merge_files``).
"""

import sys
from typing import List, Optional

from espnet2.utils.types import str2bool

from espnet_msrs.utils.cli import parse_tool_args, tool_parser
from espnet_msrs.utils.data_dir import merge_files, split_file


def get_parser():
    """Command-line parser."""
    parser = tool_parser(__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("split", help="split a file into --num parts")
    s.add_argument("--in", dest="input", required=True, help="Input file")
    s.add_argument("--out_pattern", required=True, help="Output path with JOB")
    s.add_argument("--num", type=int, required=True, help="Number of parts")
    s.add_argument("--keys_only", type=str2bool, default=False,
                   help="Write only the first column (key files)")
    m = sub.add_parser("merge", help="merge parts sorted by key")
    m.add_argument("--inputs", nargs="+", required=True, help="Part files")
    m.add_argument("--out", required=True, help="Output file")
    m.add_argument("--expect_keys", default=None,
                   help="File whose keys the merge should cover (reported)")
    m.add_argument("--left_out", nargs="*", default=[],
                   help="Reports '<key>\\t<reason>' of keys the jobs left out (absent on purpose)")
    m.add_argument("--left_out_out", default=None,
                   help="Merged --left_out reports (written, empty when none)")
    return parser


def main(cmd: Optional[List[str]] = None) -> None:
    """Split or merge."""
    args = parse_tool_args(get_parser(), cmd)
    if args.command == "split":
        split_file(args.input, args.out_pattern, args.num, args.keys_only)
    else:
        merge_files(args.inputs, args.out, args.expect_keys, args.left_out, args.left_out_out)


if __name__ == "__main__":
    main(sys.argv[1:])
