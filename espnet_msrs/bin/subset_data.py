#!/usr/bin/env python3
"""A deterministic fraction of a data directory (the MSRS search on part of the data).

Example (stage 8 with ``--search_data_fraction 0.3``)::

    python -m espnet_msrs.bin.subset_data --in_dir dump/raw/train \\
        --out_dir dump/raw/train_frac0.3_seed0 --fraction 0.3 --seed 0 \\
        --shape_file exp/asr_stats/train/speech_shape \\
        --out_shape_file dump/raw/train_frac0.3_seed0/speech_shape

Keeps ``round(fraction · N)`` utterances chosen by
:func:`espnet_msrs.utils.data_dir.select_fraction` (the same for the same
seed, whatever the file order) with every per-utterance file, and the
matching lines of a shape file (so ESPnet batches only the subset).
"""

import logging
import sys
from typing import List, Optional

from espnet_msrs.utils.cli import parse_tool_args, tool_parser
from espnet_msrs.utils.data_dir import read_kv, select_fraction, subset_data_dir, write_kv

logger = logging.getLogger(__name__)


def get_parser():
    """Command-line parser."""
    parser = tool_parser(__doc__)
    parser.add_argument("--in_dir", required=True, help="Input data directory")
    parser.add_argument("--out_dir", required=True, help="Output data directory")
    parser.add_argument("--fraction", type=float, required=True, help="In (0, 1]")
    parser.add_argument("--seed", type=int, default=0, help="Selection seed")
    parser.add_argument("--shape_file", default=None, help="ESPnet shape file to subset")
    parser.add_argument("--out_shape_file", default=None, help="Its subset")
    return parser


def main(cmd: Optional[List[str]] = None) -> None:
    """Write the subset."""
    args = parse_tool_args(get_parser(), cmd)
    keys = list(read_kv(f"{args.in_dir}/text", allow_empty_value=True))
    keep = select_fraction(keys, args.fraction, args.seed)
    subset_data_dir(args.in_dir, args.out_dir, keep)
    if args.shape_file:
        if not args.out_shape_file:
            raise ValueError("--shape_file needs --out_shape_file")
        shapes = read_kv(args.shape_file)
        missing = [k for k in keep if k not in shapes]
        if missing:
            raise ValueError(f"{args.shape_file} lacks {len(missing)} selected utterance(s), "
                             f"e.g. {missing[0]}; run stage 7 again")
        write_kv(args.out_shape_file, {k: shapes[k] for k in keep})
    logger.info("Subset: %s -> %s kept=%d of %d (fraction=%g seed=%d)", args.in_dir,
                args.out_dir, len(keep), len(keys), args.fraction, args.seed)


if __name__ == "__main__":
    main(sys.argv[1:])
