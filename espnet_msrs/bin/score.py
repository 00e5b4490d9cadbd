#!/usr/bin/env python3
"""Score one decoded test set: WER and CER (recipe stage 12).

Example::

    python -m espnet_msrs.bin.score --ref data/test/text \\
        --hyp exp/<tag>/decode/test/text --out_dir exp/<tag>/decode/test/score

Writes ``result.txt`` (sclite-like summary and alignments) and ``result.json``
into ``--out_dir`` (see :func:`espnet_msrs.scoring.results.score_dir`).
``--scorer auto`` uses sclite when installed and jiwer otherwise; both files
name the scorer (jiwer's unit-cost alignment can count fewer errors than
sclite's 3/3/4 costs on a few utterances: README, "Scoring").
"""

import argparse
import logging
import sys
from typing import List, Optional

from espnet_msrs.scoring.results import SCORERS, score_dir
from espnet_msrs.utils.cli import add_log_level_argument, parse_tool_args, tool_parser

logger = logging.getLogger(__name__)


def get_parser() -> argparse.ArgumentParser:
    """Command-line parser."""
    parser = tool_parser("Score a decoded test set (WER and CER) with sclite or jiwer")
    parser.add_argument("--ref", required=True, help="Reference Kaldi text file")
    parser.add_argument("--hyp", required=True, help="Hypothesis Kaldi text file")
    parser.add_argument("--out_dir", required=True, help="Output directory")
    parser.add_argument(
        "--scorer",
        default="auto",
        choices=SCORERS,
        help="auto: sclite if installed, else jiwer",
    )
    parser.add_argument(
        "--utt2spk",
        default=None,
        help="Speaker map for sclite's per-speaker tables "
        "(default: utt2spk beside --ref if present)",
    )
    parser.add_argument(
        "--case_sensitive",
        action="store_true",
        help="Compare words exactly (sclite -s); default folds ASCII case",
    )
    add_log_level_argument(parser)
    return parser


def main(cmd: Optional[List[str]] = None) -> None:
    """Run the scorer from the command line."""
    args = parse_tool_args(get_parser(), cmd)
    result = score_dir(
        args.ref,
        args.hyp,
        args.out_dir,
        scorer=args.scorer,
        utt2spk=args.utt2spk,
        case_sensitive=args.case_sensitive,
    )
    logger.info(
        f"WER={result['wer']:.2f}% CER={result['cer']:.2f}% "
        f"n_utts={result['n_utts']} scorer={result['scorer']} "
        f"missing_hyps={len(result['missing_hyps'])} out_dir={args.out_dir}"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
