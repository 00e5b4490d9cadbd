#!/usr/bin/env python3
"""Validate and format a data directory (recipe stage 3).

Example::

    python -m espnet_msrs.bin.validate_data --in_dir dump/prep/train \\
        --out_dir dump/raw/org/train --modality av --sample_rate 16000 --fps 25 \\
        --frame_size 96 --av_tolerance 2 --nj 4

Checks every utterance (text, audio, video, their lengths; see
:mod:`espnet_msrs.data_prep.validate`), lists the bad ones with the reason in
``<out_dir>/bad_utts.txt`` and writes the good ones to ``--out_dir``; with
``--strict true`` any bad utterance makes the command exit with status 1.
"""

import logging
import sys
from typing import List, Optional

from espnet2.utils.types import str2bool

from espnet_msrs.data_prep.validate import MODALITIES, Expectations, validate_data_dir
from espnet_msrs.utils.cli import add_job_arguments, parse_tool_args, tool_parser

logger = logging.getLogger(__name__)


def get_parser():
    """Command-line parser."""
    parser = tool_parser(__doc__)
    parser.add_argument("--in_dir", required=True, help="Input data directory")
    parser.add_argument("--out_dir", required=True, help="Output data directory")
    parser.add_argument("--modality", required=True, choices=MODALITIES)
    parser.add_argument("--sample_rate", type=int, default=16000, help="Expected Hz")
    parser.add_argument("--fps", type=float, default=25.0, help="Expected frame rate")
    parser.add_argument("--frame_size", type=int, default=96,
                        help="Expected square frame side (0: any)")
    parser.add_argument("--av_tolerance", type=int, default=2,
                        help="Max audio/video length difference (frames)")
    parser.add_argument("--decode_video", type=str2bool, default=True,
                        help="Decode every video completely (catches truncation)")
    parser.add_argument("--video_dump_dir", default=None,
                        help="Dump valid videos as <dir>/<utt>.npy and list those")
    parser.add_argument("--strict", type=str2bool, default=False,
                        help="Fail on any bad utterance instead of excluding it")
    parser.add_argument("--failed_list", action="append", default=[],
                        help="<utt>\\t<reason> file of an earlier stage (repeatable)")
    add_job_arguments(parser)
    return parser


def main(cmd: Optional[List[str]] = None) -> int:
    """Validate; returns the exit status (1 on a ValueError, logged)."""
    args = parse_tool_args(get_parser(), cmd)
    exp = Expectations(args.modality, args.sample_rate, args.fps, args.frame_size,
                       args.av_tolerance, decode_video=args.decode_video)
    try:
        validate_data_dir(args.in_dir, args.out_dir, exp, args.strict, args.nj,
                          args.failed_list, args.video_dump_dir)
    except ValueError as e:
        logger.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
