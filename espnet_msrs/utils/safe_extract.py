"""Extract zip and tar archives without letting a member escape the target.

Packed models (recipe stage 13, DESIGN.md §4; issue 5 item 5) are unpacked
from archives a user may have downloaded. ``tarfile`` without an extraction
filter (the default up to Python 3.13) writes wherever a member's name or a
link points (CVE-2007-4559), and ESPnet's own ``pack_funcs.unpack`` writes
YAML members to ``outpath / name`` unchecked. :func:`safe_extract` first
checks every member and refuses the archive — extracting nothing — if any
member

* has an absolute name (``/x``, ``\\x``, ``C:x``) or a ``..`` component,
* is a symbolic or hard link whose target is absolute or resolves outside the
  target directory (links inside the archive and already on disk are
  followed, like ``realpath`` would),
* would be written through a link that leads outside, or
* is a device, FIFO or other special file.

Tar archives are then extracted with ``tarfile``'s ``"data"`` filter as a
second line of defence. Zip symlink entries are checked the same way;
``zipfile`` writes them as small regular files holding the link target.
"""

import logging
import os
import re
import stat
import tarfile
import zipfile
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

logger = logging.getLogger(__name__)

_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
_MAX_LINK_HOPS = 40

# (name, kind, link target) with kind in file, dir, symlink, hardlink, special.
_Entry = Tuple[str, str, Optional[str]]


class _Escape(Exception):
    """A path resolves outside the extraction root."""


def _split(name: str) -> List[str]:
    # Treat backslashes as separators too: conservative on every platform.
    return [p for p in re.split(r"[/\\]+", name) if p not in ("", ".")]


def _is_absolute(name: str) -> bool:
    return name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) is not None


def archive_type(path: Path) -> str:
    """``"zip"`` or ``"tar"`` (by suffix, else by content).

    Raises:
        ValueError: Neither.
    """
    lower = path.name.lower()
    if lower.endswith(".zip"):
        return "zip"
    if lower.endswith(_TAR_SUFFIXES):
        return "tar"
    if zipfile.is_zipfile(path):
        return "zip"
    if tarfile.is_tarfile(path):
        return "tar"
    raise ValueError(
        f"{path}: not a supported archive; allowed: zip, "
        + ", ".join(s.lstrip(".") for s in _TAR_SUFFIXES)
    )


def _tar_entries(tar: tarfile.TarFile) -> List[_Entry]:
    entries = []
    for m in tar.getmembers():
        if m.issym():
            kind = "symlink"
        elif m.islnk():
            kind = "hardlink"
        elif m.isdir():
            kind = "dir"
        elif m.isfile():
            kind = "file"
        else:
            kind = "special"
        entries.append((m.name, kind, m.linkname if m.issym() or m.islnk() else None))
    return entries


def _zip_entries(zf: zipfile.ZipFile) -> List[_Entry]:
    entries = []
    for info in zf.infolist():
        # Unix file type bits, when the archive was made on Unix (else 0).
        unix = info.create_system == 3
        file_type = stat.S_IFMT(info.external_attr >> 16) if unix else 0
        if info.is_dir():
            entries.append((info.filename, "dir", None))
        elif file_type == stat.S_IFLNK:
            target = zf.read(info).decode("utf-8", errors="replace")
            entries.append((info.filename, "symlink", target))
        elif file_type not in (0, stat.S_IFREG, stat.S_IFDIR):
            entries.append((info.filename, "special", None))
        else:
            entries.append((info.filename, "file", None))
    return entries


def _resolve(
    parts: List[str], links: Dict[Tuple[str, ...], str], hops: int = 0
) -> List[str]:
    """Resolve a relative path against the archive's own symlinks.

    Follows every component that is a symlink member (like ``realpath``).

    Raises:
        _Escape: If the path leaves the root (or loops).
    """
    current: List[str] = []
    for part in parts:
        if part == "..":
            if not current:
                raise _Escape("resolves above the target directory")
            current.pop()
            continue
        current.append(part)
        target = links.get(tuple(current))
        if target is not None:
            if hops >= _MAX_LINK_HOPS:
                raise _Escape("too many levels of symbolic links")
            if _is_absolute(target):
                raise _Escape(f"goes through a link to the absolute path {target!r}")
            current = _resolve(current[:-1] + _split(target), links, hops + 1)
    return current


def _inside(path: str, root: str) -> bool:
    return os.path.commonpath([path, root]) == root


def _check(entries: List[_Entry], archive: Path, out_dir: Path) -> None:
    """Raise ValueError naming the first bad member; check all before writing."""
    links: Dict[Tuple[str, ...], str] = {}
    kinds: Dict[Tuple[str, ...], str] = {}
    for name, kind, target in entries:
        key = tuple(_split(name))
        if kind == "symlink":
            links[key] = target or ""
        if key in kinds and "symlink" in (kinds[key], kind) and kinds[key] != kind:
            raise ValueError(
                f"{archive}: member {name!r} appears both as a symlink and as a "
                f"{kind if kind != 'symlink' else kinds[key]}; refusing to extract"
            )
        kinds[key] = kind
    root = os.path.realpath(out_dir)

    for name, kind, target in entries:
        def refuse(why: str) -> ValueError:
            return ValueError(
                f"{archive}: refusing to extract member {name!r}: {why}; nothing "
                f"is extracted to {out_dir}"
            )

        if not _split(name):
            raise refuse("empty member name")
        if _is_absolute(name):
            raise refuse("absolute path")
        if ".." in _split(name):
            raise refuse("'..' in the path")
        if kind == "special":
            raise refuse("device, FIFO or other special file")
        parts = _split(name)
        try:
            parent = _resolve(parts[:-1], links)
        except _Escape as e:
            raise refuse(f"its directory {e}")
        # Links already on disk (e.g. from an earlier extraction) count too.
        if not _inside(os.path.realpath(os.path.join(root, *parent)), root):
            raise refuse("its directory resolves outside the target directory on disk")
        disk = os.path.realpath(os.path.join(root, *parent, parts[-1]))
        if kind != "symlink" and not _inside(disk, root):
            raise refuse("resolves outside the target directory on disk")
        if kind in ("symlink", "hardlink"):
            if not target:
                raise refuse(f"{kind} with an empty target")
            if _is_absolute(target):
                raise refuse(f"{kind} to the absolute path {target!r}")
            # Symlinks are relative to their directory, hard links to the root.
            base = parent if kind == "symlink" else []
            try:
                resolved = _resolve(base + _split(target), links)
            except _Escape as e:
                raise refuse(f"{kind} target {target!r} {e}")
            disk_target = os.path.realpath(os.path.join(root, *resolved))
            if not _inside(disk_target, root):
                raise refuse(
                    f"{kind} target {target!r} resolves outside the target directory"
                )


def check_archive(
    archive_path: Union[str, Path], out_dir: Union[str, Path] = "."
) -> None:
    """Check an archive's members without extracting anything.

    Use it before handing an archive to an unpacker that does not check
    (``espnet2.main_funcs.pack_funcs.unpack``, ``espnet_model_zoo``'s
    ``ModelDownloader``).

    Args:
        archive_path: The archive.
        out_dir: Directory it will be extracted to (links already on disk
            there are taken into account).

    Raises:
        ValueError: If the archive type is not supported, or naming the first
            member that would escape ``out_dir``.
    """
    archive_path, out_dir = Path(archive_path), Path(out_dir)
    if archive_type(archive_path) == "zip":
        with zipfile.ZipFile(archive_path) as zf:
            _check(_zip_entries(zf), archive_path, out_dir)
    else:
        with tarfile.open(archive_path, "r:*") as tar:
            _check(_tar_entries(tar), archive_path, out_dir)


def safe_extract(
    archive_path: Union[str, Path], out_dir: Union[str, Path]
) -> List[Path]:
    """Extract a zip or tar(.gz/.bz2/.xz) archive, refusing escaping members.

    All members are checked before anything is written (see the module
    docstring for the rules).

    Args:
        archive_path: The archive.
        out_dir: Target directory (created if missing).

    Returns:
        Paths of the extracted members (directories included), in archive
        order.

    Raises:
        ValueError: If the archive type is not supported, or naming the first
            member that would escape ``out_dir`` (then nothing is extracted).
    """
    archive_path, out_dir = Path(archive_path), Path(out_dir)
    kind = archive_type(archive_path)
    if kind == "zip":
        with zipfile.ZipFile(archive_path) as zf:
            entries = _zip_entries(zf)
            _check(entries, archive_path, out_dir)
            out_dir.mkdir(parents=True, exist_ok=True)
            zf.extractall(out_dir)
    else:
        with tarfile.open(archive_path, "r:*") as tar:
            entries = _tar_entries(tar)
            _check(entries, archive_path, out_dir)
            out_dir.mkdir(parents=True, exist_ok=True)
            if hasattr(tarfile, "data_filter"):
                tar.extractall(out_dir, filter="data")
            else:  # Python < 3.11.4: our checks above are the only defence.
                tar.extractall(out_dir)
    logger.info(f"extracted {len(entries)} members of {archive_path} to {out_dir}")
    return [out_dir.joinpath(*_split(name)) for name, _, _ in entries]
