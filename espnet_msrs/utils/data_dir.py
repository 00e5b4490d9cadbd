"""Kaldi-style data directory helpers shared by the recipe tools (no espnet2).

A data directory holds ``<key> <value>`` files (``wav.scp``, ``video.scp``,
``text``, ``utt2spk``, …) sorted by key. These helpers read and write them
the way the recipe stages need: duplicate keys are errors naming the file and
line, writes are atomic and skipped when the content is unchanged (so a
re-run of a stage leaves timestamps alone), and a subset of a directory keeps
every per-utterance file consistent.
"""

import argparse
import os
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Union

PathLike = Union[str, os.PathLike]

#: Per-utterance files of a data directory that are subset together.
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


def str2bool(value: str) -> bool:
    """Parse ``true``/``false`` (ESPnet's convention for boolean options)."""
    lowered = str(value).lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def read_kv(path: PathLike, allow_empty_value: bool = False) -> "OrderedDict[str, str]":
    """Read ``<key> <value>`` lines in file order.

    Args:
        path: The file.
        allow_empty_value: Accept lines with a key only (value ``""``), e.g.
            an empty transcript in ``text``; otherwise they are an error.

    Raises:
        ValueError: A duplicate key, or a line without value, naming the file
            and line number.
    """
    entries: "OrderedDict[str, str]" = OrderedDict()
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            parts = line.strip().split(maxsplit=1)
            if len(parts) == 1:
                if not allow_empty_value:
                    raise ValueError(
                        f"{path}:{lineno}: expected '<key> <value>', got {line!r}"
                    )
                parts.append("")
            if parts[0] in entries:
                raise ValueError(f"{path}:{lineno}: duplicate key {parts[0]!r}")
            entries[parts[0]] = parts[1]
    return entries


def write_if_changed(path: PathLike, content: str) -> bool:
    """Atomically write ``content`` unless the file already holds it.

    Returns:
        True if the file was (re)written.
    """
    path = Path(path)
    if path.is_file() and path.read_text(encoding="utf-8") == content:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(content)
    os.replace(tmp, path)
    return True


def write_kv(path: PathLike, entries: Mapping[str, str], sort: bool = True) -> bool:
    """Write ``<key> <value>`` lines (sorted by key by default) if changed."""
    keys = sorted(entries) if sort else list(entries)
    lines = (f"{k} {entries[k]}\n" if entries[k] != "" else f"{k}\n" for k in keys)
    return write_if_changed(path, "".join(lines))


def spk2utt_from_utt2spk(utt2spk: Mapping[str, str]) -> Dict[str, str]:
    """Invert ``utt2spk`` into ``spk2utt`` values (space-separated, sorted)."""
    out: Dict[str, List[str]] = {}
    for utt in sorted(utt2spk):
        out.setdefault(utt2spk[utt], []).append(utt)
    return {spk: " ".join(utts) for spk, utts in out.items()}


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
        extra_files: Further files copied verbatim when present (``feats_type``).

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
