#!/usr/bin/env python3
"""Split a Kaldi-style scp/text file into N parts and merge parts back.

The recipe's parallel jobs (collect stats at stage 7, decoding at stage 11)
need what Kaldi's ``utils/split_scp.pl`` and ``cat | sort`` do; Kaldi's utils
are not part of ESPnet's pip package, so this module does it::

    python -m espnet_msrs.bin.split_scp split --in dump/raw/test/text \\
        --out_pattern exp/x/logdir/keys.JOB.scp --num 4 --keys_only true
    python -m espnet_msrs.bin.split_scp merge \\
        --inputs exp/x/logdir/output.{1,2,3,4}/1best_recog/text \\
        --out exp/x/decode/test/text --expect_keys dump/raw/test/text

``split`` keeps the file order and gives the parts contiguous runs of lines
whose sizes differ by at most one (like ``split_scp.pl``); ``JOB`` in the
pattern is replaced by 1..N. ``merge`` concatenates the parts, refuses
duplicate keys, sorts by key and, with ``--expect_keys``, reports keys that
are missing (a decoding job that lost utterances) or unexpected.
"""

import argparse
import logging
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from espnet_msrs.utils.runtime import setup_logging
from espnet_msrs.utils.data_dir import str2bool, write_if_changed

logger = logging.getLogger(__name__)


def _lines(path: str) -> List[str]:
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def split_lines(lines: Sequence[str], num: int) -> List[List[str]]:
    """Contiguous parts of ``lines`` whose sizes differ by at most one.

    Args:
        lines: The lines (any order is kept).
        num: Number of parts, 1 <= num <= len(lines).

    Returns:
        ``num`` lists; the first ``len(lines) % num`` hold one line more.

    Raises:
        ValueError: ``num`` < 1 or more parts than lines.
    """
    if num < 1:
        raise ValueError(f"--num={num} must be >= 1")
    if num > len(lines):
        raise ValueError(f"cannot split {len(lines)} lines into {num} non-empty parts")
    base, extra = divmod(len(lines), num)
    parts, start = [], 0
    for i in range(num):
        size = base + (1 if i < extra else 0)
        parts.append(list(lines[start : start + size]))
        start += size
    return parts


def split_file(path: str, out_pattern: str, num: int, keys_only: bool = False) -> List[Path]:
    """Write the parts of ``path`` to ``out_pattern`` with JOB = 1..num.

    Returns:
        The written paths.
    """
    if "JOB" not in out_pattern:
        raise ValueError(f"--out_pattern {out_pattern!r} must contain JOB")
    lines = _lines(path)
    if keys_only:
        lines = [line.split(maxsplit=1)[0] for line in lines]
    outs = []
    for i, part in enumerate(split_lines(lines, num), 1):
        out = Path(out_pattern.replace("JOB", str(i)))
        write_if_changed(out, "".join(line + "\n" for line in part))
        outs.append(out)
    logger.info(f"split {path} ({len(lines)} lines) into {num} parts: {out_pattern}")
    return outs


def merge_files(
    inputs: Sequence[str], out: str, expect_keys: Optional[str] = None
) -> Dict[str, List[str]]:
    """Merge ``<key> ...`` files into ``out`` sorted by key.

    Args:
        inputs: Part files (all must exist).
        out: Output file.
        expect_keys: A file whose first column lists the keys the merge should
            hold; missing/unexpected keys are reported (not an error).

    Returns:
        ``{"missing": [...], "unexpected": [...]}``.

    Raises:
        ValueError: A missing part or a key present twice.
    """
    entries: Dict[str, str] = {}
    for path in inputs:
        if not Path(path).is_file():
            raise ValueError(f"merge: part {path} does not exist (did its job fail?)")
        for line in _lines(path):
            key = line.split(maxsplit=1)[0]
            if key in entries:
                raise ValueError(f"merge: key {key!r} appears twice (again in {path})")
            entries[key] = line
    report = {"missing": [], "unexpected": []}
    if expect_keys is not None:
        expected = [line.split(maxsplit=1)[0] for line in _lines(expect_keys)]
        report["missing"] = sorted(set(expected) - set(entries))
        report["unexpected"] = sorted(set(entries) - set(expected))
        for what in ("missing", "unexpected"):
            if report[what]:
                logger.warning(
                    f"merge {out}: {len(report[what])} {what} key(s), e.g. {report[what][:3]}"
                )
    write_if_changed(out, "".join(entries[k] + "\n" for k in sorted(entries)))
    logger.info(f"merged {len(inputs)} parts ({len(entries)} lines) into {out}")
    return report


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Split a Kaldi-style file into parts, or merge parts",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("split", help="split a file into --num parts")
    s.add_argument("--in", dest="input", required=True, help="Input file")
    s.add_argument("--out_pattern", required=True, help="Output path with JOB")
    s.add_argument("--num", type=int, required=True, help="Number of parts")
    s.add_argument("--keys_only", type=str2bool, default=False,
                   help="Write only the first column (key files)")
    m = sub.add_parser("merge", help="merge parts sorted by key")
    m.add_argument("--inputs", nargs="+", required=True, help="Part files")
    m.add_argument("--out", required=True, help="Output file")
    m.add_argument("--expect_keys", default=None,
                   help="File whose keys the merge should cover (reported)")
    return parser


def main(cmd: Optional[List[str]] = None) -> None:
    setup_logging(logging.INFO)
    args = get_parser().parse_args(cmd)
    if args.command == "split":
        split_file(args.input, args.out_pattern, args.num, args.keys_only)
    else:
        merge_files(args.inputs, args.out, args.expect_keys)


if __name__ == "__main__":
    main(sys.argv[1:])
