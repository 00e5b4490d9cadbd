#!/usr/bin/env python3
"""Combine Kaldi-style data directories (e.g. LRS3 + VoxCeleb2 training sets).

Example (from ``egs2/lrs3/avsr1``)::

    python -m espnet_msrs.bin.combine_data --out data/train_lrs3_vox2 \\
        data/train ../../voxceleb2/avsr1/data/train

Every per-utterance file is concatenated and sorted, ``spk2utt`` rebuilt; a
file present in only some inputs or an id in several inputs is an error
naming the directories (:func:`espnet_msrs.utils.data_dir.combine_data_dirs`).
The recipes write absolute media paths, so directories of different recipes
combine as they are.
"""

import logging
import sys
from typing import List, Optional

from espnet_msrs.utils.cli import parse_tool_args, tool_parser
from espnet_msrs.utils.data_dir import combine_data_dirs

logger = logging.getLogger(__name__)


def get_parser():
    """Command-line parser."""
    parser = tool_parser(__doc__)
    parser.add_argument("--out", required=True, help="Output data directory")
    parser.add_argument("inputs", nargs="+", help="Input data directories")
    return parser


def main(cmd: Optional[List[str]] = None) -> int:
    """Combine; returns the exit status (1 on a ValueError, logged)."""
    args = parse_tool_args(get_parser(), cmd)
    try:
        n = combine_data_dirs(args.inputs, args.out)
    except ValueError as e:
        logger.error("%s", e)
        return 1
    logger.info("Combined %s -> %s utterances=%d", " + ".join(args.inputs), args.out, n)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
