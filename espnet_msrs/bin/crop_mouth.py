#!/usr/bin/env python3
"""Crop 96×96 greyscale mouth ROIs for a Kaldi-style data directory (stage 2).

Example::

    python -m espnet_msrs.bin.crop_mouth \\
        --video_scp data/train/video.scp --landmark_scp data/train/landmark.scp \\
        --out_dir dump/roi/train --out_scp dump/prep/train/video.scp --nj 2

``video.scp`` and ``landmark.scp`` hold ``<utt_id> <path>`` lines; each crop
is written to ``<out_dir>/<utt_id>.mp4`` and listed in ``--out_scp``. Crops
made from the same video, landmarks and options by an earlier run are kept;
failures are listed with the reason in ``--failed_list`` (see
:func:`espnet_msrs.data_prep.video.crop_scp`). Exit status 1 if any
utterance failed, unless ``--allow_failures true``.
"""

import sys
from pathlib import Path
from typing import List, Optional

from espnet_msrs.data_prep.video import FPS, CropOptions, crop_scp
from espnet_msrs.utils.cli import add_job_arguments, failure_status, parse_tool_args, tool_parser


def get_parser():
    """Command-line parser."""
    parser = tool_parser(__doc__)
    parser.add_argument("--video_scp", required=True, help="<utt_id> <video path> lines")
    parser.add_argument("--landmark_scp", required=True, help="<utt_id> <landmark file> lines")
    parser.add_argument("--out_dir", required=True, help="Directory of the ROI mp4s")
    parser.add_argument("--out_scp", required=True, help="Output video.scp of the ROIs")
    parser.add_argument("--missing_landmarks_hint", default="",
                        help="How to get landmarks (ends the missing-landmark warning)")
    parser.add_argument("--crop_size", type=int, default=96)
    parser.add_argument("--smooth_window", type=int, default=5, help="Landmark smoothing (frames)")
    parser.add_argument("--fps", type=float, default=float(FPS), help="Frame rate written")
    parser.add_argument("--crf", type=int, default=18, help="libx264 CRF")
    add_job_arguments(parser, failures=True)
    return parser


def main(cmd: Optional[List[str]] = None) -> int:
    """Run the cropper; returns the exit status."""
    args = parse_tool_args(get_parser(), cmd)
    counts = crop_scp(
        args.video_scp, args.landmark_scp, args.out_dir, args.out_scp,
        CropOptions(args.crop_size, args.smooth_window, args.fps, args.crf),
        failed_list=args.failed_list, nj=args.nj,
        missing_landmarks_hint=args.missing_landmarks_hint,
    )
    return failure_status(counts["failed"], args.allow_failures,
                          args.failed_list or Path(args.out_dir) / "failed.txt")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
