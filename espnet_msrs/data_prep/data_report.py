"""What happened to each test set on its way to decoding, for RESULTS.md.

A WER means little without its test set: :func:`describe_test_data` writes a
Markdown section that says, per test set,

* how many utterances the official set has (when the recipe knows it, e.g.
  LRS3 test: 1,321), how many stage 1 listed in ``data/<set>``, how many
  passed stage 3's validation and were decoded;
* which were dropped and why: stage 1's ``data/<set>/dropped.txt`` (written
  by the corpus preparations that know it), stage 3's ``bad_utts.txt`` and
  the decoding's (stage 11: ``<decode_dir>/<set>/bad_utts.txt``, utterances
  that failed to load or have another audio rate than the model; their
  words count as deleted), counted per kind of reason with the utterance
  ids; the same for the set's noisy copies (``<set>_snr*``);
* whether the set is also the validation set, or shares utterances with it
  (its WER is then optimistic: the checkpoints were chosen on it);
* which noise the noisy copies and the training augmentation used
  (:func:`espnet_msrs.data_prep.noise.describe_noise`).
"""

import os
from collections import Counter
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Union

from espnet_msrs.data_prep.noise import describe_noise
from espnet_msrs.data_prep.validate import problem_kind
from espnet_msrs.utils.data_dir import read_kv, read_report

PathLike = Union[str, os.PathLike]

#: Dropped utterances listed by id per test set (the rest: see the files).
MAX_LISTED = 20


def _keys(path: Path) -> List[str]:
    return list(read_kv(path, allow_empty_value=True)) if path.is_file() else []


def _fmt(n: Optional[int]) -> str:
    return "–" if n is None else f"{n:,}"


def _by_kind(reasons: Iterable[str]) -> str:
    """``"missing video file: 2, empty text: 1"`` (most frequent first)."""
    counts = Counter(problem_kind(r) for r in reasons)
    return ", ".join(f"{k}: {v}" for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def parse_sizes(spec: str) -> Dict[str, int]:
    """``"test=1321 dev=2703"`` -> {"test": 1321, "dev": 2703}.

    Raises:
        ValueError: An entry that is not ``<set>=<integer>``.
    """
    sizes = {}
    for entry in spec.split():
        name, _, value = entry.partition("=")
        if not name or not value.isdigit():
            raise ValueError(f"--official_test_sizes entry {entry!r}: expected <set>=<utterances>")
        sizes[name] = int(value)
    return sizes


def describe_test_data(
    test_sets: Sequence[str],
    valid_set: str,
    data_root: PathLike = "data",
    dump_root: PathLike = "dump",
    official_sizes: Optional[Mapping[str, int]] = None,
    noises: Optional[Mapping[str, PathLike]] = None,
    decode_dir: Optional[PathLike] = None,
) -> str:
    """The Markdown section (see the module docstring).

    Args:
        test_sets: The clean test sets.
        valid_set: The validation set (checkpoint selection).
        data_root: Stage-1 data directories (``<data_root>/<set>``).
        dump_root: Holds ``raw/org/<set>`` (stage 3) and ``raw/<set>``.
        official_sizes: Official utterance counts of some test sets.
        noises: ``"train"`` and/or test set -> noise wav used.
        decode_dir: The decoding's output root (``<decode_dir>/<set>/bad_utts.txt``).
    """
    data_root, dump_root = Path(data_root), Path(dump_root)
    official_sizes = dict(official_sizes or {})
    valid_keys = set(_keys(dump_root / "raw" / valid_set / "text"))
    decode_dir = Path(decode_dir) if decode_dir is not None else None
    rows = ["| Test set | Official | Stage 1 (data/) | Valid (stage 3) | Decoded | Dropped | Note |",
            "|:---|---:|---:|---:|---:|:---|:---|"]
    details: List[str] = []
    for name in test_sets:
        listed = _keys(data_root / name / "text")
        valid3 = _keys(dump_root / "raw" / "org" / name / "text")
        decoded = _keys(dump_root / "raw" / name / "text")
        bad = read_report(dump_root / "raw" / "org" / name / "bad_utts.txt")
        dropped1 = read_report(data_root / name / "dropped.txt")
        official = official_sizes.get(name)
        drops = []
        if official is not None and official != len(listed):
            why = f" ({_by_kind(dropped1.values())})" if dropped1 else ""
            drops.append(f"stage 1: {official - len(listed):,} of the official set not listed{why}")
        elif dropped1:
            drops.append(f"stage 1: {len(dropped1):,} ({_by_kind(dropped1.values())})")
        if bad:
            drops.append(f"stage 3: {len(bad):,} ({_by_kind(bad.values())})")
        left: Dict[str, str] = {}
        if decode_dir is not None:
            left = read_report(decode_dir / name / "bad_utts.txt")
            if left:
                drops.append(f"decoding: {len(left):,} ({_by_kind(left.values())}; counted as deleted)")
            noisy = [reason for path in sorted(decode_dir.glob(f"{name}_snr*/bad_utts.txt"))
                     for reason in read_report(path).values()]
            if noisy:
                drops.append(f"decoding of its noisy copies: {len(noisy):,} "
                             f"({_by_kind(noisy)}; {decode_dir}/{name}_snr*/bad_utts.txt)")
        note = ""
        overlap = valid_keys & set(decoded)
        if name == valid_set:
            note = "**also the validation set**: checkpoints were chosen on it, its WER is optimistic"
        elif overlap:
            note = (f"**{len(overlap):,} of {len(decoded):,} utterances are also in the validation "
                    f"set {valid_set}**: its WER is optimistic")
        rows.append(f"| {name} | {_fmt(official)} | {_fmt(len(listed))} | "
                    f"{_fmt(len(valid3))} | {_fmt(len(decoded) - len(left))} | {'; '.join(drops) or 'none'} "
                    f"| {note} |")
        listed_drops = {**dropped1, **bad, **left}
        if listed_drops:
            details.append(f"Dropped from {name}:")
            for uid in sorted(listed_drops)[:MAX_LISTED]:
                details.append(f"- `{uid}`: {listed_drops[uid]}")
            if len(listed_drops) > MAX_LISTED:
                details.append(f"- … {len(listed_drops) - MAX_LISTED:,} more in "
                               f"{data_root}/{name}/dropped.txt, "
                               f"{dump_root}/raw/org/{name}/bad_utts.txt"
                               + (f", {decode_dir}/{name}/bad_utts.txt" if decode_dir else ""))
            details.append("")
    lines = ["## Test data", "", *rows, ""]
    if details:
        lines += details
    if noises:
        lines += ["Babble noise:", ""]
        for what, path in noises.items():
            label = "training augmentation" if what == "train" else f"noisy copies of {what}"
            lines.append(f"- {label}: {describe_noise(path)}")
        lines.append("")
    return "\n".join(lines)
