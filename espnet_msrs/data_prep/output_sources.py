"""Which source each per-utterance output of a stage was made from.

Stage 2 writes one file per utterance (a 16 kHz wav, a mouth-ROI mp4) and
keeps the outputs of an earlier run. An output may only be kept while it
still follows its inputs: :class:`OutputSources` is the ledger that says so.
It lives beside the outputs (``<out_dir>/sources.tsv``, one
``<uid>\\t<signature>\\t<note>`` line per output) and records, for each
output, the signature of what it was made from — every source path with its
size and modification time, and the options that shape the output (sample
rate, crop size). An output whose recorded signature differs from the
current one (another file in ``wav.scp``, a replaced recording, a new crop
size) or that has no record (written by a run killed before the ledger was
saved) is made again.
"""

import os
from pathlib import Path
from typing import Dict, Iterable, Optional, Sequence, Tuple, Union

from espnet_msrs.utils.data_dir import iter_lines, write_if_changed

PathLike = Union[str, os.PathLike]

#: File name of the ledger inside an output directory.
LEDGER = "sources.tsv"


def source_signature(sources: Sequence[Optional[str]], options: str = "") -> str:
    """``path:size:mtime_ns`` of each source (``-`` for None, ``missing`` for a
    file that does not exist), then the options, joined by ``|``."""
    parts = []
    for src in sources:
        if src is None:
            parts.append("-")
            continue
        try:
            st = os.stat(src)
        except OSError:
            parts.append(f"{src}:missing")
            continue
        parts.append(f"{src}:{st.st_size}:{st.st_mtime_ns}")
    return "|".join(parts + [options])


class OutputSources:
    """The ledger of one output directory (see the module docstring).

    Args:
        out_dir: The directory of the per-utterance outputs.
    """

    def __init__(self, out_dir: PathLike):
        self.path = Path(out_dir) / LEDGER
        self._entries: Dict[str, Tuple[str, str]] = {}
        if self.path.is_file():
            for _, line in iter_lines(self.path):
                fields = line.split("\t")
                if len(fields) == 3:
                    self._entries[fields[0]] = (fields[1], fields[2])

    def is_current(self, uid: str, output: PathLike, signature: str) -> bool:
        """The output exists and was made from exactly ``signature``."""
        entry = self._entries.get(uid)
        return entry is not None and entry[0] == signature and Path(output).is_file()

    def note(self, uid: str) -> str:
        """The note recorded with an output (e.g. the source sample rate)."""
        return self._entries.get(uid, ("", ""))[1]

    def record(self, uid: str, signature: str, note: str = "") -> None:
        """Remember that ``uid``'s output was made from ``signature``."""
        self._entries[uid] = (signature, str(note))

    def forget(self, uid: str) -> None:
        """Drop the record of ``uid`` (its output failed or is gone)."""
        self._entries.pop(uid, None)

    def save(self, keep: Optional[Iterable[str]] = None) -> None:
        """Write the ledger (atomically; only ``keep``'s entries if given)."""
        uids = sorted(self._entries if keep is None else set(keep) & set(self._entries))
        lines = [f"{u}\t{self._entries[u][0]}\t{self._entries[u][1]}\n" for u in uids]
        write_if_changed(self.path, "".join(lines))
