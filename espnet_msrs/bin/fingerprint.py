#!/usr/bin/env python3
"""Stage-marker helper of avsr.sh: fingerprint inputs, verify artifacts.

Examples::

    # one digest of configs, label files, corpus trees and the media of scps
    python -m espnet_msrs.bin.fingerprint inputs --path db.sh /data/LRS3 \\
        --scp data/train/wav.scp --text "--nj 4"
    # exit status 1, naming each file, if an artifact is incomplete or unloadable
    python -m espnet_msrs.bin.fingerprint verify exp/x/mask_search/mask.pth ...

See :mod:`espnet_msrs.utils.fingerprint` for what each kind of input
contributes and what "loadable" means per file type.
"""

import logging
import sys
from typing import List, Optional

from espnet_msrs.utils.cli import parse_tool_args, tool_parser
from espnet_msrs.utils.fingerprint import fingerprint, verify_artifact

logger = logging.getLogger(__name__)


def get_parser():
    """Command-line parser."""
    parser = tool_parser(__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    i = sub.add_parser("inputs", help="print a 16-hex digest of the inputs")
    i.add_argument("--path", nargs="*", default=[], help="Files or directory trees")
    i.add_argument("--scp", nargs="*", default=[], help="scp files whose listed files count")
    i.add_argument("--text", nargs="*", default=[], help="Option values")
    v = sub.add_parser("verify", help="check that artifacts are complete and load")
    v.add_argument("artifacts", nargs="+", help="Files")
    return parser


def main(cmd: Optional[List[str]] = None) -> int:
    """Print the digest, or verify; returns the exit status."""
    args = parse_tool_args(get_parser(), cmd)
    if args.command == "inputs":
        print(fingerprint(args.path, args.scp, args.text))
        return 0
    problems = [p for p in map(verify_artifact, args.artifacts) if p is not None]
    for problem in problems:
        logger.error("untrusted artifact: %s", problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
