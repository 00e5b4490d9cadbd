#!/usr/bin/env python3
"""Generate the synthetic GRID-like audio-visual corpus (the embedded demo).

Example::

    python -m espnet_msrs.bin.make_synthgrid --out downloads/synthgrid \\
        --num_speakers 4 --utts_per_speaker 50 --seed 0 --nj 2

Writes ``<out>/<spk>/<code>.{wav,mp4,txt,landmarks.npy}``, ``manifest.tsv``
and ``config.json`` (layout: :mod:`espnet_msrs.synth.grid_corpus`). Running
again skips complete utterances; a larger ``--utts_per_speaker`` or
``--num_speakers`` adds utterances without changing existing ones.
"""

import os
import sys
from typing import List, Optional

from espnet_msrs.synth.grid_corpus import GenerationConfig, generate_corpus
from espnet_msrs.utils.cli import add_job_arguments, parse_tool_args, tool_parser


def get_parser():
    """Command-line parser."""
    defaults = GenerationConfig()
    parser = tool_parser(__doc__)
    parser.add_argument("--out", required=True, help="Output corpus directory")
    parser.add_argument("--num_speakers", type=int, default=defaults.num_speakers)
    parser.add_argument("--utts_per_speaker", type=int, default=defaults.utts_per_speaker)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--frame_size", type=int, default=defaults.frame_size,
                        help="Face video side (px)")
    parser.add_argument("--noise_std", type=float, default=defaults.noise_std,
                        help="Gaussian pixel noise added to each frame (grey levels)")
    parser.add_argument("--no_head_motion", action="store_true", help="Render a still head")
    parser.add_argument("--crf", type=int, default=defaults.crf, help="libx264 CRF")
    add_job_arguments(parser, nj=min(2, os.cpu_count() or 1))
    return parser


def main(cmd: Optional[List[str]] = None) -> None:
    """Run the generator from the command line."""
    args = parse_tool_args(get_parser(), cmd)
    config = GenerationConfig(
        num_speakers=args.num_speakers,
        utts_per_speaker=args.utts_per_speaker,
        seed=args.seed,
        frame_size=args.frame_size,
        noise_std=args.noise_std,
        head_motion=not args.no_head_motion,
        crf=args.crf,
    )
    generate_corpus(args.out, config, nj=args.nj)


if __name__ == "__main__":
    main(sys.argv[1:])
