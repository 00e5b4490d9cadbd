#!/usr/bin/env python3
"""Remove too short / too long utterances from a data directory (stage 4).

Example::

    python -m espnet_msrs.bin.filter_data --in_dir dump/raw/org/train \\
        --out_dir dump/raw/train --min_dur 0.3 --max_dur 20

Durations come from ``<in_dir>/utt2dur`` (written by stage 3,
:mod:`espnet_msrs.bin.validate_data`). Kept utterances are written with all
per-utterance files of the directory (``wav.scp``, ``video.scp``, ``text``,
``utt2spk``, ``utt2dur``, ``utt2num_frames``, …) and a regenerated
``spk2utt``; removed ones are listed in ``<out_dir>/removed.txt`` as
``<utt_id><TAB><reason>`` and counted in the log, never dropped silently.
``--max_dur inf`` disables the upper limit.
"""

import argparse
import logging
import math
import sys
from pathlib import Path
from typing import Dict, List, Optional

from espnet_msrs.utils.runtime import setup_logging
from espnet_msrs.utils.data_dir import read_kv, subset_data_dir, write_if_changed

logger = logging.getLogger(__name__)


def filter_data_dir(in_dir: str, out_dir: str, min_dur: float, max_dur: float) -> Dict[str, str]:
    """Copy ``in_dir`` to ``out_dir`` without utterances outside [min_dur, max_dur].

    Returns:
        Removed utterance -> reason.

    Raises:
        ValueError: Bad limits, a missing ``utt2dur``, or nothing left.
    """
    if not (0 <= min_dur <= max_dur) or math.isnan(max_dur):
        raise ValueError(f"need 0 <= --min_dur <= --max_dur, got {min_dur}, {max_dur}")
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    if not (in_dir / "utt2dur").is_file():
        raise ValueError(f"{in_dir}/utt2dur not found (written by stage 3)")
    durs = {u: float(d) for u, d in read_kv(in_dir / "utt2dur").items()}
    removed: Dict[str, str] = {}
    for uid, dur in durs.items():
        if dur < min_dur:
            removed[uid] = f"too short: {dur:.3f} s < min_dur={min_dur} s"
        elif dur > max_dur:
            removed[uid] = f"too long: {dur:.3f} s > max_dur={max_dur} s"
    keep = [u for u in durs if u not in removed]
    if not keep:
        raise ValueError(f"no utterance of {in_dir} is within [{min_dur}, {max_dur}] s")
    subset_data_dir(in_dir, out_dir, keep, extra_files=("bad_utts.txt",))
    write_if_changed(out_dir / "removed.txt",
                     "".join(f"{u}\t{removed[u]}\n" for u in sorted(removed)))
    logger.info(
        "Length filter: %s -> %s kept=%d removed=%d (min_dur=%s max_dur=%s) list=%s",
        in_dir, out_dir, len(keep), len(removed), min_dur, max_dur, out_dir / "removed.txt",
    )
    return removed


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Remove utterances shorter than --min_dur or longer than --max_dur",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--in_dir", required=True, help="Input data dir (with utt2dur)")
    parser.add_argument("--out_dir", required=True, help="Output data dir")
    parser.add_argument("--min_dur", type=float, default=0.0, help="Seconds")
    parser.add_argument("--max_dur", type=float, default=math.inf, help="Seconds (inf: none)")
    return parser


def main(cmd: Optional[List[str]] = None) -> None:
    setup_logging(logging.INFO)
    args = get_parser().parse_args(cmd)
    filter_data_dir(args.in_dir, args.out_dir, args.min_dur, args.max_dur)


if __name__ == "__main__":
    main(sys.argv[1:])
