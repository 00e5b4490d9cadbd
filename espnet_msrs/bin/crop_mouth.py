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

import argparse
import logging
import sys
from pathlib import Path
from typing import List, Optional

from espnet2.utils.types import str2bool

from espnet_msrs.data_prep.video import FPS, CropOptions, crop_scp
from espnet_msrs.utils.runtime import setup_logging

logger = logging.getLogger(__name__)


def get_parser() -> argparse.ArgumentParser:
    """Command-line parser."""
    parser = argparse.ArgumentParser(
        description="Crop greyscale mouth ROIs from videos and 68-point landmarks",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--video_scp", required=True, help="<utt_id> <video path> lines")
    parser.add_argument("--landmark_scp", required=True, help="<utt_id> <landmark file> lines")
    parser.add_argument("--out_dir", required=True, help="Directory of the ROI mp4s")
    parser.add_argument("--out_scp", required=True, help="Output video.scp of the ROIs")
    parser.add_argument("--failed_list", default=None,
                        help="Failures with reasons (default: <out_dir>/failed.txt)")
    parser.add_argument("--allow_failures", type=str2bool, default=False,
                        help="Exit 0 even if some utterances failed")
    parser.add_argument("--missing_landmarks_hint", default="",
                        help="How to get landmarks (ends the missing-landmark warning)")
    parser.add_argument("--crop_size", type=int, default=96)
    parser.add_argument("--smooth_window", type=int, default=5, help="Landmark smoothing (frames)")
    parser.add_argument("--fps", type=float, default=float(FPS), help="Frame rate written")
    parser.add_argument("--crf", type=int, default=18, help="libx264 CRF")
    parser.add_argument("--nj", type=int, default=1, help="Parallel processes")
    parser.add_argument("--log_level", default="INFO",
                        choices=("ERROR", "WARNING", "INFO", "DEBUG"))
    return parser


def main(cmd: Optional[List[str]] = None) -> int:
    """Run the cropper; returns the exit status."""
    args = get_parser().parse_args(cmd)
    setup_logging(args.log_level)
    counts = crop_scp(
        args.video_scp, args.landmark_scp, args.out_dir, args.out_scp,
        CropOptions(args.crop_size, args.smooth_window, args.fps, args.crf),
        failed_list=args.failed_list, nj=args.nj,
        missing_landmarks_hint=args.missing_landmarks_hint,
    )
    if counts["failed"] and not args.allow_failures:
        logger.error("%d utterance(s) failed (see %s); pass --allow_failures true to "
                     "continue", counts["failed"],
                     args.failed_list or Path(args.out_dir) / "failed.txt")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
