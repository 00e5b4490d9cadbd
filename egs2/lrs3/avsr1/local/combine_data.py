#!/usr/bin/env python3
"""Combine Kaldi-style data directories (e.g. LRS3 + VoxCeleb2 training sets).

Example (from ``egs2/lrs3/avsr1``)::

    local/combine_data.py --out data/train_lrs3_vox2 \\
        data/train ../../voxceleb2/avsr1/data/train

Every per-utterance file (``wav.scp``, ``video.scp``, ``landmark.scp``,
``text``, ``utt2spk``, ``utt2num_samples``, …) is concatenated and sorted;
``spk2utt`` is rebuilt. A file must be present in every input or in none
(a set without ``landmark.scp`` cannot be mixed with one that has it), and
utterance ids must be unique across the inputs — both are errors naming
the directories. The recipes write absolute media paths, so directories of
different recipes combine as they are. The output is rewritten only when
its content changes.
"""

import argparse
import logging
import sys
from pathlib import Path
from typing import List, Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))

import prep_utils as pu  # noqa: E402
from espnet_msrs.utils.data_dir import UTT_FILES, read_kv  # noqa: E402

logger = logging.getLogger("combine_data")


def combine(inputs: Sequence[Path], out: Path) -> int:
    """Combine ``inputs`` into ``out``; returns the number of utterances.

    Raises:
        ValueError: No ``text`` in an input, a per-utterance file present in
            only some inputs, or an utterance id in several inputs.
    """
    if not inputs:
        raise ValueError("no input data directory")
    for src in inputs:
        if not (src / "text").is_file():
            raise ValueError(f"{src} is not a data directory (no text file)")
    owner = {}
    for src in inputs:
        for uid in read_kv(src / "text", allow_empty_value=True):
            if uid in owner:
                raise ValueError(
                    f"utterance id {uid} is in both {owner[uid]} and {src}; "
                    f"the inputs must have distinct ids"
                )
            owner[uid] = src
    out.mkdir(parents=True, exist_ok=True)
    for name in UTT_FILES:
        present = [src for src in inputs if (src / name).is_file()]
        if not present:
            if (out / name).exists():
                (out / name).unlink()
            continue
        if len(present) != len(inputs):
            missing = [str(s) for s in inputs if s not in present]
            raise ValueError(
                f"{name} exists in {', '.join(map(str, present))} but not in "
                f"{', '.join(missing)}"
            )
        table = {}
        for src in inputs:
            table.update(read_kv(src / name, allow_empty_value=(name == "text")))
        pu.write_kv(out / name, table)
    utt2spk = read_kv(out / "utt2spk")
    pu.write_kv(out / "spk2utt", pu.spk2utt_from_utt2spk(utt2spk))
    return len(owner)


def get_parser() -> argparse.ArgumentParser:
    """Command-line parser."""
    parser = argparse.ArgumentParser(
        description="Combine Kaldi-style data directories",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--out", required=True, help="Output data directory")
    parser.add_argument("inputs", nargs="+", help="Input data directories")
    return parser


def main(cmd: Optional[Sequence[str]] = None) -> int:
    """Run; returns the exit status."""
    args = get_parser().parse_args(cmd)
    pu.setup_logging()
    inputs: List[Path] = [Path(p) for p in args.inputs]
    try:
        n = combine(inputs, Path(args.out))
    except ValueError as e:
        logger.error("%s", e)
        return 1
    logger.info("Combined %s -> %s utterances=%d", " + ".join(args.inputs), args.out, n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
