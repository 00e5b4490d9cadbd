"""Atomic file writes: a reader sees the old file or the new one, never a part.

Every file espnet_msrs writes goes through this module (issue 11 item 3).
Each function writes to a temporary file in the destination's own directory
(so the rename never crosses a file system), flushes and ``fsync``s it, then
``os.replace``s it over the destination and ``fsync``s the directory. A kill
at any moment leaves either the previous file or the complete new one; the
temporary file is removed when the writer raises, and a kill -9 can only
leave a hidden ``.<name>.tmp-*`` file beside it, which nothing reads.

* :func:`atomic_open` — a file object to write into (text or binary);
* :func:`atomic_path` — a temporary path for tools that write by name
  (ffmpeg, soundfile, ``np.save``); it keeps the destination's suffix, which
  such tools use to choose the format;
* :func:`write_text`, :func:`write_bytes`, :func:`write_json`,
  :func:`torch_save`, :func:`copy_file` — the common cases in one call.

New files get the usual permissions (``0o666`` minus the umask), not the
``0o600`` of :func:`tempfile.mkstemp`.
"""

import contextlib
import json
import os
import secrets
import shutil
from pathlib import Path
from typing import IO, Any, Iterator, Union

PathLike = Union[str, os.PathLike]

_TMP_MARK = ".tmp-"


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (a no-op where unsupported)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _create_tmp(path: Path, keep_suffix: bool) -> Path:
    """Create (exclusively, umask permissions) an empty temporary file."""
    suffix = path.suffix if keep_suffix else ""
    for _ in range(100):
        tmp = path.with_name(f".{path.name}{_TMP_MARK}{secrets.token_hex(4)}{suffix}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(f"no free temporary name beside {path}")


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _commit(tmp: Path, path: Path) -> None:
    os.replace(tmp, path)
    _fsync_dir(path.parent)


@contextlib.contextmanager
def atomic_path(path: PathLike, keep_suffix: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it becomes ``path``.

    For writers that take a file name. The temporary file exists (empty)
    when the block starts; the writer may overwrite or replace it. When the
    block raises, the temporary file is removed and ``path`` is untouched.

    Args:
        path: Destination (its directory must exist).
        keep_suffix: End the temporary name with ``path``'s suffix
            (``.wav``, ``.mp4``, ``.npy``) for tools that pick the format
            from it.

    Example::

        with atomic_path("dump/x.wav") as tmp:
            soundfile.write(tmp, samples, 16000)
    """
    path = Path(path)
    tmp = _create_tmp(path, keep_suffix)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"the writer of {path} removed its temporary file {tmp}")
        _fsync_file(tmp)
        _commit(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_open(
    path: PathLike, mode: str = "w", encoding: str = "utf-8"
) -> Iterator[IO[Any]]:
    """Open a temporary file for writing; on success it replaces ``path``.

    Args:
        path: Destination (its directory must exist).
        mode: ``"w"`` (text) or ``"wb"`` (binary).
        encoding: Text encoding (text mode only).

    Example::

        with atomic_open("data/test/text") as f:
            f.write("utt1 HELLO\\n")
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open mode={mode!r}; allowed: 'w', 'wb'")
    with atomic_path(path, keep_suffix=False) as tmp:
        kwargs = {"encoding": encoding} if mode == "w" else {}
        with open(tmp, mode, **kwargs) as f:
            yield f


def write_text(path: PathLike, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_open(path, "w", encoding=encoding) as f:
        f.write(text)


def write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as f:
        f.write(data)


def write_json(path: PathLike, obj: Any, indent: int = 2, **kwargs: Any) -> None:
    """Write ``obj`` as JSON (UTF-8, trailing newline) to ``path`` atomically.

    Keyword arguments go to :func:`json.dumps` (``ensure_ascii`` defaults to
    False). The object is serialised before anything is written, so an
    unserialisable object leaves ``path`` untouched.
    """
    kwargs.setdefault("ensure_ascii", False)
    write_text(path, json.dumps(obj, indent=indent, **kwargs) + "\n")


def torch_save(obj: Any, path: PathLike) -> None:
    """``torch.save(obj, path)`` atomically."""
    import torch

    with atomic_open(path, "wb") as f:
        torch.save(obj, f)


def copy_file(src: PathLike, dst: PathLike) -> None:
    """Copy ``src``'s content and permission bits to ``dst`` atomically."""
    with atomic_path(dst, keep_suffix=False) as tmp:
        shutil.copyfile(src, tmp)
        shutil.copymode(src, tmp)


def is_temporary(path: PathLike) -> bool:
    """True for a temporary file this module creates (a leftover after a kill)."""
    name = Path(path).name
    return name.startswith(".") and _TMP_MARK in name
