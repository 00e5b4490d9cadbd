"""Fingerprints of a stage's inputs, and checks of the artifacts it vouches for.

The recipe's stage markers (``avsr.sh``: ``<dir>/.done``) hold a signature of
everything a stage's output depends on and the size and time of the
artifacts they vouch for. This module computes what the shell cannot do
cheaply:

* :func:`fingerprint` — one digest of files, directory trees and the media
  files listed in scp files: the **content** of small files (configs, id
  lists, labels up to :data:`HASH_LIMIT`), **size and modification time** of
  larger files and of the files listed in an scp, and for a directory tree
  the size and time of every file (up to :data:`TREE_FILE_LIMIT` files;
  beyond that the time of every directory, which changes when a file is
  added, removed or renamed anywhere below; hidden files and
  ``__pycache__`` are left out);
* :func:`verify_artifact` — a file the marker vouches for is complete and
  loadable: a ``.pth`` loads with ``torch.load(weights_only=True)``
  (:func:`espnet_msrs.utils.safe_load.check_torch_file`; a truncated or
  crafted file fails), a ``.zip`` passes its CRC test, a
  ``.json``/``.yaml`` parses, anything else exists and is not empty.
"""

import hashlib
import json
import os
import zipfile
from pathlib import Path
from typing import Iterable, List, Optional, Union

from espnet_msrs.utils.data_dir import iter_lines

PathLike = Union[str, os.PathLike]

#: Files up to this size are fingerprinted by their content.
HASH_LIMIT = 4 * 1024 * 1024
#: Trees with more files are fingerprinted by their directories' times.
TREE_FILE_LIMIT = 20000


def _stat_line(path: Path) -> str:
    try:
        st = path.stat()
    except OSError:
        return f"missing {path}"
    return f"{path} {st.st_size} {st.st_mtime_ns}"


def _file_line(path: Path) -> str:
    st = path.stat()
    if st.st_size <= HASH_LIMIT:
        return f"{path} sha1:{hashlib.sha1(path.read_bytes()).hexdigest()}"
    return f"{path} {st.st_size} {st.st_mtime_ns}"


def _ignored(name: str) -> bool:
    """Hidden files (temporary writes, markers) and Python caches are no input."""
    return name.startswith(".") or name == "__pycache__"


def _tree_lines(root: Path) -> List[str]:
    files: List[str] = []
    dirs: List[str] = []
    too_many = False
    for current, subdirs, names in os.walk(root, followlinks=True):
        subdirs[:] = sorted(d for d in subdirs if not _ignored(d))
        names = [n for n in names if not _ignored(n)]
        here = Path(current)
        dirs.append(f"{here.relative_to(root)}/ {here.stat().st_mtime_ns}")
        if not too_many:
            files += [_stat_line(here / n) for n in sorted(names)]
            too_many = len(files) > TREE_FILE_LIMIT
    if too_many:
        return [f"tree {root} (directory times)"] + dirs
    return [f"tree {root}"] + files


def path_lines(path: PathLike) -> List[str]:
    """The fingerprint lines of one file or directory tree (see the module)."""
    path = Path(path)
    if path.is_dir():
        return _tree_lines(path)
    if path.is_file():
        return [_file_line(path)]
    return [f"missing {path}"]


def scp_lines(scp: PathLike) -> List[str]:
    """``<key> <path> <size> <mtime>`` of every file listed in an scp."""
    lines = [f"scp {scp}"]
    if not Path(scp).is_file():
        return lines + [f"missing {scp}"]
    for _, line in iter_lines(scp):
        parts = line.split(maxsplit=1)
        if len(parts) == 2:
            lines.append(f"{parts[0]} {_stat_line(Path(parts[1]))}")
    return lines


def fingerprint(
    paths: Iterable[PathLike] = (), scps: Iterable[PathLike] = (), texts: Iterable[str] = ()
) -> str:
    """A 16-hex digest of ``paths`` (files, trees), the files listed in
    ``scps`` and free ``texts`` (option values), in the order given."""
    digest = hashlib.sha1()
    for line in [f"text {t}" for t in texts]:
        digest.update(line.encode("utf-8", "surrogateescape") + b"\n")
    for path in paths:
        for line in path_lines(path):
            digest.update(line.encode("utf-8", "surrogateescape") + b"\n")
    for scp in scps:
        for line in scp_lines(scp):
            digest.update(line.encode("utf-8", "surrogateescape") + b"\n")
    return digest.hexdigest()[:16]


def verify_artifact(path: PathLike) -> Optional[str]:
    """Why ``path`` cannot be trusted (None when it is complete and loads)."""
    path = Path(path)
    if not path.is_file():
        return f"{path}: missing"
    if path.stat().st_size == 0:
        return f"{path}: empty"
    try:
        if path.suffix == ".pth":
            from espnet_msrs.utils.safe_load import check_torch_file

            check_torch_file(path, what="stage artifact")
        elif path.suffix == ".zip":
            with zipfile.ZipFile(path) as z:
                bad = z.testzip()
            if bad is not None:
                return f"{path}: member {bad} is corrupt"
        elif path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
        elif path.suffix in (".yaml", ".yml"):
            import yaml

            yaml.safe_load(path.read_text(encoding="utf-8"))
    except Exception as e:  # any failure to load means: do not trust it
        return f"{path}: cannot be loaded ({type(e).__name__}: {' '.join(str(e).split())[:300]})"
    return None
