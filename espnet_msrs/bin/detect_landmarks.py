#!/usr/bin/env python3
"""Offline 68-point face landmarks (MediaPipe Face Mesh) for videos without any.

Runs in the landmark environment (``local/make_landmark_env.sh`` at the
repository root: mediapipe 0.10.21 pins numpy<2), by file path::

    .venv_landmarks/bin/python espnet_msrs/bin/detect_landmarks.py \\
        --video_scp data/local/lrs3/landmark_todo.scp --out_dir data/local/lrs3/landmarks \\
        --out_scp data/local/lrs3/landmarks/detected.scp --nj 4

Writes ``<out_dir>/<utt_id>.npy`` float32 ``(T, 68, 2)`` (NaN rows: no face;
see :mod:`espnet_msrs.data_prep.face_landmarks`) listed in ``--out_scp``. A
video in which no frame has a face is reported in ``--failed_list`` and still
written (all NaN), so the mouth-ROI stage reports it again by name. Exit
status 1 if any video failed, unless ``--allow_failures true``. Existing
outputs are kept, so a re-run only processes what is missing.
"""

import logging
import sys
from pathlib import Path
from typing import Optional, Sequence

if __package__ in (None, ""):  # run by file path: make espnet_msrs importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

# Standard library + numpy + mediapipe only: no espnet2 in this environment
# (so no espnet2.utils.types.str2bool and no ESPnet scp reader here).
from espnet_msrs.data_prep.face_landmarks import (  # noqa: E402
    FaceMeshDetector,
    MeshFactory,
    detect_scp,
)
from espnet_msrs.utils.cli import (  # noqa: E402
    add_job_arguments,
    failure_status,
    parse_tool_args,
    tool_parser,
)
from espnet_msrs.utils.data_dir import iter_lines, write_if_changed, write_report  # noqa: E402

logger = logging.getLogger("detect_landmarks")


def get_parser():
    """Command-line parser."""
    parser = tool_parser(__doc__)
    parser.add_argument("--video_scp", required=True, help="<utt_id> <video> lines")
    parser.add_argument("--out_dir", required=True, help="Directory of <utt_id>.npy")
    parser.add_argument("--out_scp", required=True, help="Output landmark scp")
    parser.add_argument("--failed_list", default=None,
                        help="Failures with reasons (default: <out_dir>/failed.txt)")
    parser.add_argument("--allow_failures", choices=("true", "false"), default="false")
    parser.add_argument("--min_detection_confidence", type=float, default=0.5)
    parser.add_argument("--min_tracking_confidence", type=float, default=0.5)
    add_job_arguments(parser)
    return parser


def main(cmd: Optional[Sequence[str]] = None) -> int:
    """Run the detector; returns the exit status."""
    args = parse_tool_args(get_parser(), cmd)
    videos = dict(line.split(maxsplit=1) for _, line in iter_lines(args.video_scp)
                  if line.strip())
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    failed_list = Path(args.failed_list or out_dir / "failed.txt")
    try:  # fail early, naming the fix, if mediapipe is missing
        import mediapipe  # noqa: F401
    except ImportError:
        FaceMeshDetector()
    logger.info("Landmarks: video_scp=%s -> out_dir=%s videos=%d nj=%d",
                args.video_scp, out_dir, len(videos), args.nj)
    scp, failed = detect_scp(
        videos, out_dir,
        MeshFactory(args.min_detection_confidence, args.min_tracking_confidence),
        nj=args.nj,
    )
    write_if_changed(Path(args.out_scp), "".join(f"{u} {scp[u]}\n" for u in sorted(scp)))
    write_report(failed_list, failed)
    logger.info("Landmarks done: listed=%d failed=%d out_scp=%s failed_list=%s",
                len(scp), len(failed), args.out_scp, failed_list)
    return failure_status(len(failed), args.allow_failures == "true", failed_list)


if __name__ == "__main__":
    sys.exit(main())
