"""Kaldi-style data directories: read, write, subset, combine, split.

A data directory holds ``<key> <value>`` files (``wav.scp``, ``video.scp``,
``landmark.scp``, ``text``, ``utt2spk``, …) sorted by key, plus ``spk2utt``.
These helpers are what the recipe stages and the corpus preparations share:

* reading goes through ESPnet's own reader
  (:func:`espnet2.fileio.read_text.read_2columns_text`); when it fails, the
  error names the file, the line and what is wrong (an undecodable byte, a
  duplicate key, a line without value);
* writes are atomic (:mod:`espnet_msrs.utils.atomic`) and skipped when the
  content is unchanged, so a re-run of a stage leaves timestamps alone;
* :func:`write_data_dir` writes a directory from :class:`Utterance` records,
  :func:`subset_data_dir` keeps every per-utterance file consistent,
  :func:`combine_data_dirs` joins directories (LRS3 + VoxCeleb2),
  :func:`filter_data_dir` removes too short/long utterances (stage 4),
  :func:`split_file` / :func:`merge_files` cut files into job parts and
  merge the jobs' outputs (stages 7 and 11), and :func:`select_fraction`
  draws a deterministic subset (the MSRS search on part of the data).
"""

import logging
import math
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from espnet_msrs.utils import atomic

PathLike = Union[str, os.PathLike]
logger = logging.getLogger(__name__)

#: Per-utterance files of a data directory (subset, combined and filtered together).
UTT_FILES = (
    "wav.scp",
    "video.scp",
    "landmark.scp",
    "text",
    "utt2spk",
    "utt2num_samples",
    "utt2num_frames",
    "utt2dur",
)


# ------------------------------------------------------------------ reading
def iter_lines(path: PathLike) -> Iterator[Tuple[int, str]]:
    """``(line number, line without newline)`` of a UTF-8 text file.

    Raises:
        ValueError: A line that is not valid UTF-8, naming the file, the line,
            the column and the byte.
    """
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            yield lineno, decode_line(raw, path, lineno)


def decode_line(raw: bytes, path: PathLike, lineno: int) -> str:
    """One line of ``path`` as text (trailing newline removed).

    Raises:
        ValueError: Not valid UTF-8 (names the file, line, column and byte).
    """
    try:
        return raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as e:
        raise ValueError(
            f"{path}:{lineno}: not valid UTF-8 (byte 0x{raw[e.start]:02x} at column "
            f"{e.start + 1}); convert the file to UTF-8"
        ) from None


def _explain(path: PathLike, allow_empty_value: bool) -> str:
    """What is wrong with a ``<key> <value>`` file, with its line number."""
    seen: Dict[str, int] = {}
    for lineno, line in iter_lines(path):  # raises for undecodable bytes
        parts = line.strip().split(maxsplit=1)
        if not parts:
            return f"{path}:{lineno}: empty line; expected '<key> <value>'"
        if len(parts) == 1 and not allow_empty_value:
            return f"{path}:{lineno}: expected '<key> <value>', got {line!r}"
        if parts[0] in seen:
            return (
                f"{path}:{lineno}: duplicate key {parts[0]!r} (first on line "
                f"{seen[parts[0]]})"
            )
        seen[parts[0]] = lineno
    return f"{path}: cannot be read as '<key> <value>' lines"


def read_kv(path: PathLike, allow_empty_value: bool = False) -> Dict[str, str]:
    """Read ``<key> <value>`` lines (file order) with ESPnet's reader.

    Args:
        path: The file.
        allow_empty_value: Accept lines with a key only (value ``""``), e.g.
            an empty transcript in ``text``; otherwise they are an error.

    Raises:
        ValueError: An undecodable byte, an empty line, a duplicate key or a
            line without value, naming the file and the line.
    """
    from espnet2.fileio.read_text import read_2columns_text

    try:
        table = read_2columns_text(path)
    except (UnicodeDecodeError, ValueError, RuntimeError):
        raise ValueError(_explain(path, allow_empty_value)) from None
    if not allow_empty_value and any(v == "" for v in table.values()):
        raise ValueError(_explain(path, allow_empty_value))
    return table


# ------------------------------------------------------------------ writing
def write_if_changed(path: PathLike, content: str) -> bool:
    """Atomically write ``content`` unless the file already holds it.

    Returns:
        True if the file was (re)written.
    """
    path = Path(path)
    if path.is_file() and path.read_bytes() == content.encode("utf-8"):
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(path, content)
    return True


def write_kv(path: PathLike, entries: Mapping[str, str], sort: bool = True) -> bool:
    """Write ``<key> <value>`` lines (sorted by key by default) if changed."""
    keys = sorted(entries) if sort else list(entries)
    lines = (f"{k} {entries[k]}\n" if entries[k] != "" else f"{k}\n" for k in keys)
    return write_if_changed(path, "".join(lines))


def write_report(path: PathLike, problems: Iterable[Tuple[str, str]]) -> None:
    """Write ``<key>\\t<reason>`` lines (sorted; an empty file when none)."""
    lines = sorted(f"{key}\t{' '.join(str(reason).split())}\n" for key, reason in problems)
    write_if_changed(path, "".join(lines))


def read_report(path: PathLike) -> Dict[str, str]:
    """``<key>\\t<reason>`` lines of a report (a missing file: empty)."""
    out: Dict[str, str] = {}
    if Path(path).is_file():
        for _, line in iter_lines(path):
            if line.strip():
                key, _, reason = line.partition("\t")
                out.setdefault(key.strip(), reason.strip())
    return out


def spk2utt_from_utt2spk(utt2spk: Mapping[str, str]) -> Dict[str, str]:
    """Invert ``utt2spk`` into ``spk2utt`` values (space-separated, sorted)."""
    out: Dict[str, List[str]] = {}
    for utt in sorted(utt2spk):
        out.setdefault(utt2spk[utt], []).append(utt)
    return {spk: " ".join(utts) for spk, utts in out.items()}


@dataclass
class Utterance:
    """One line of every file of a Kaldi-style data directory.

    ``wav``/``video``/``landmark`` are paths or None (not written).
    """

    uid: str
    spk: str
    text: str
    wav: Optional[str] = None
    video: Optional[str] = None
    landmark: Optional[str] = None


_SCP_FIELDS = (("wav.scp", "wav"), ("video.scp", "video"), ("landmark.scp", "landmark"))


def write_data_dir(
    out_dir: PathLike, utts: Iterable[Utterance], always: Sequence[str] = ()
) -> int:
    """Write ``wav.scp``, ``video.scp``, ``landmark.scp``, ``text``,
    ``utt2spk``, ``spk2utt`` (each scp only if some utterance has the field,
    or if it is named in ``always``, e.g. an empty ``landmark.scp`` that makes
    the mouth-ROI stage report every video instead of skipping the crop).

    Files whose content is unchanged are not rewritten; a stale scp of a
    field that no utterance has any more is removed.

    Returns:
        Number of utterances.

    Raises:
        ValueError: Duplicate utterance ids, whitespace in an id, or an id
            that does not start with its speaker id (Kaldi sort order).
    """
    out_dir = Path(out_dir)
    table: Dict[str, Utterance] = {}
    for utt in utts:
        if utt.uid in table:
            raise ValueError(f"{out_dir}: duplicate utterance id {utt.uid!r}")
        if not utt.uid.startswith(utt.spk):
            raise ValueError(
                f"{out_dir}: utterance id {utt.uid!r} must start with its "
                f"speaker id {utt.spk!r}"
            )
        if any(c.isspace() for c in utt.uid + utt.spk):
            raise ValueError(f"{out_dir}: whitespace in id {utt.uid!r}/{utt.spk!r}")
        table[utt.uid] = utt
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, field in _SCP_FIELDS:
        values = {u: getattr(x, field) for u, x in table.items() if getattr(x, field)}
        if values or name in always:
            write_kv(out_dir / name, values)
        elif (out_dir / name).exists():
            (out_dir / name).unlink()
    write_kv(out_dir / "text", {u: x.text for u, x in table.items()})
    utt2spk = {u: x.spk for u, x in table.items()}
    write_kv(out_dir / "utt2spk", utt2spk)
    write_kv(out_dir / "spk2utt", spk2utt_from_utt2spk(utt2spk))
    return len(table)


# --------------------------------------------------- subset, combine, filter
def subset_data_dir(
    src: PathLike,
    dst: PathLike,
    keep: Iterable[str],
    replace: Optional[Mapping[str, Mapping[str, str]]] = None,
    extra_files: Iterable[str] = (),
) -> int:
    """Copy the per-utterance files of ``src`` restricted to ``keep``.

    Args:
        src: Source data directory.
        dst: Destination (created); ``spk2utt`` is regenerated from ``utt2spk``.
        keep: Utterance ids to keep.
        replace: File name -> {utt: value} written instead of ``src``'s file
            (e.g. a resampled ``wav.scp``); its keys must cover ``keep``.
        extra_files: Further files copied verbatim when present (``bad_utts.txt``).

    Returns:
        Number of utterances written.
    """
    src, dst = Path(src), Path(dst)
    keep = set(keep)
    replace = dict(replace or {})
    dst.mkdir(parents=True, exist_ok=True)
    for name in UTT_FILES:
        if name in replace:
            table = replace[name]
        elif (src / name).is_file():
            table = read_kv(src / name, allow_empty_value=(name == "text"))
        else:
            continue
        missing = keep - set(table)
        if missing:
            raise ValueError(
                f"{name} for {dst} lacks {len(missing)} utterance(s), e.g. "
                f"{sorted(missing)[0]}"
            )
        write_kv(dst / name, {k: table[k] for k in keep})
    if (dst / "utt2spk").is_file():
        write_kv(dst / "spk2utt", spk2utt_from_utt2spk(read_kv(dst / "utt2spk")))
    for name in extra_files:
        if (src / name).is_file():
            write_if_changed(dst / name, (src / name).read_text(encoding="utf-8"))
    return len(keep)


def combine_data_dirs(inputs: Sequence[PathLike], out: PathLike) -> int:
    """Combine data directories (e.g. the LRS3 and VoxCeleb2 training sets).

    Every per-utterance file is concatenated and sorted; ``spk2utt`` is
    rebuilt. A file must be present in every input or in none, and
    utterance ids must be unique across the inputs.

    Returns:
        The number of utterances.

    Raises:
        ValueError: No ``text`` in an input, a per-utterance file present in
            only some inputs, or an utterance id in several inputs (naming
            the directories).
    """
    inputs = [Path(p) for p in inputs]
    out = Path(out)
    if not inputs:
        raise ValueError("no input data directory")
    for src in inputs:
        if not (src / "text").is_file():
            raise ValueError(f"{src} is not a data directory (no text file)")
    owner: Dict[str, Path] = {}
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
        table: Dict[str, str] = {}
        for src in inputs:
            table.update(read_kv(src / name, allow_empty_value=(name == "text")))
        write_kv(out / name, table)
    write_kv(out / "spk2utt", spk2utt_from_utt2spk(read_kv(out / "utt2spk")))
    return len(owner)


def filter_data_dir(
    in_dir: PathLike, out_dir: PathLike, min_dur: float, max_dur: float
) -> Dict[str, str]:
    """Copy ``in_dir`` to ``out_dir`` without utterances outside [min_dur, max_dur].

    Durations come from ``<in_dir>/utt2dur`` (stage 3). Removed utterances
    are listed in ``<out_dir>/removed.txt`` (``<utt>\\t<reason>``).

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
    write_report(out_dir / "removed.txt", removed.items())
    logger.info(
        "Length filter: %s -> %s kept=%d removed=%d (min_dur=%s max_dur=%s) list=%s",
        in_dir, out_dir, len(keep), len(removed), min_dur, max_dur,
        out_dir / "removed.txt",
    )
    return removed


def select_fraction(keys: Iterable[str], fraction: float, seed: int) -> List[str]:
    """A deterministic subset of ``round(fraction · N)`` keys (at least one).

    The keys are sorted, shuffled with ``random.Random(seed)`` and the first
    ones kept, so the subset depends only on the set of keys, the fraction
    and the seed (not on file order); a larger fraction with the same seed
    contains a smaller one.

    Returns:
        The selected keys, sorted.

    Raises:
        ValueError: ``fraction`` not in (0, 1], or no key.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction={fraction} must be in (0, 1]")
    ordered = sorted(set(keys))
    if not ordered:
        raise ValueError("select_fraction: no key to select from")
    random.Random(seed).shuffle(ordered)
    size = max(1, int(round(fraction * len(ordered))))
    return sorted(ordered[:size])


# ------------------------------------------------------------ split / merge
def split_lines(lines: Sequence[str], num: int) -> List[List[str]]:
    """Contiguous parts of ``lines`` whose sizes differ by at most one.

    Args:
        lines: The lines (order kept).
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


def _non_empty_lines(path: PathLike) -> List[str]:
    return [line for _, line in iter_lines(path) if line.strip()]


def split_file(path: PathLike, out_pattern: str, num: int, keys_only: bool = False) -> List[Path]:
    """Write the parts of ``path`` to ``out_pattern`` with JOB = 1..num
    (Kaldi's ``split_scp.pl``: file order kept, contiguous parts).

    Returns:
        The written paths.
    """
    if "JOB" not in out_pattern:
        raise ValueError(f"--out_pattern {out_pattern!r} must contain JOB")
    lines = _non_empty_lines(path)
    if keys_only:
        lines = [line.split(maxsplit=1)[0] for line in lines]
    outs = []
    for i, part in enumerate(split_lines(lines, num), 1):
        out = Path(out_pattern.replace("JOB", str(i)))
        write_if_changed(out, "".join(line + "\n" for line in part))
        outs.append(out)
    logger.info("split %s (%d lines) into %d parts: %s", path, len(lines), num, out_pattern)
    return outs


def merge_files(
    inputs: Sequence[PathLike],
    out: PathLike,
    expect_keys: Optional[PathLike] = None,
    left_out: Sequence[PathLike] = (),
    left_out_out: Optional[PathLike] = None,
) -> Dict[str, List[str]]:
    """Merge ``<key> ...`` files into ``out`` sorted by key.

    Args:
        inputs: Part files (all must exist).
        out: Output file.
        expect_keys: A file whose first column lists the keys the merge should
            hold; missing/unexpected keys are reported (not an error).
        left_out: Reports (``<key>\\t<reason>``, e.g. the decoding jobs'
            ``bad_utts.txt``) of keys their jobs left out on purpose: an
            expected key listed there is not "missing" but "left_out" (its
            hypothesis is absent; scoring counts it as deleted).
        left_out_out: Where the merged ``left_out`` reports go (written even
            when empty, so an old list never outlives a new merge).

    Returns:
        ``{"missing": [...], "unexpected": [...], "left_out": [...]}``.

    Raises:
        ValueError: A missing part, a key present twice, or a key both in a
            part and in a ``left_out`` report.
    """
    entries: Dict[str, str] = {}
    for path in inputs:
        if not Path(path).is_file():
            raise ValueError(f"merge: part {path} does not exist (did its job fail?)")
        for line in _non_empty_lines(path):
            key = line.split(maxsplit=1)[0]
            if key in entries:
                raise ValueError(f"merge: key {key!r} appears twice (again in {path})")
            entries[key] = line
    reasons: Dict[str, str] = {}
    for path in left_out:
        for key, why in read_report(path).items():
            if key in entries:
                raise ValueError(f"merge: key {key!r} is listed as left out in {path} "
                                 "but has an entry in a part")
            reasons[key] = why
    report: Dict[str, List[str]] = {"missing": [], "unexpected": [], "left_out": sorted(reasons)}
    if expect_keys is not None:
        expected = [line.split(maxsplit=1)[0] for line in _non_empty_lines(expect_keys)]
        report["missing"] = sorted(set(expected) - set(entries) - set(reasons))
        report["unexpected"] = sorted(set(entries) - set(expected))
        for what in ("missing", "unexpected"):
            if report[what]:
                logger.warning(
                    "merge %s: %d %s key(s), e.g. %s", out, len(report[what]), what,
                    report[what][:3],
                )
    if reasons:
        logger.warning("merge %s: %d key(s) left out by their jobs, e.g. %s: %s%s", out,
                       len(reasons), report["left_out"][0], reasons[report["left_out"][0]],
                       f"; all listed in {left_out_out}" if left_out_out else "")
    if left_out_out is not None:
        write_report(left_out_out, sorted(reasons.items()))
    write_if_changed(out, "".join(entries[k] + "\n" for k in sorted(entries)))
    logger.info("merged %d parts (%d lines) into %s", len(inputs), len(entries), out)
    return report
