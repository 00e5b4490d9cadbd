"""Loading checkpoints, masks and packed models without running their code.

A ``.pth`` file is a pickle: loaded with ``torch.load(weights_only=False)``
(what ESPnet's ``build_model_from_file``, ``Trainer.resume``,
``load_pretrained_model`` and ``average_nbest_models`` do) it can call any
Python function, so a shared model can run code on the machine that loads it
(issue 11 item 1). Everything espnet_msrs loads goes through here:

* :func:`load_torch_file` — ``torch.load(weights_only=True)`` with
  :data:`ALLOWED_GLOBALS` added (what an ESPnet ``checkpoint.pth`` holds
  besides tensors: numpy scalars and dtypes and ``datetime.timedelta`` of
  the reporter's statistics). A file that needs anything else is refused;
  errors name the file and say what is wrong with it.
* :func:`check_torch_file` — the same check without keeping the tensors
  (memory-mapped, so cheap even for large files); call it before handing a
  file to an ESPnet function that loads with ``weights_only=False``.
* :func:`check_state_dict_file` — a file that must be a model state dict
  (``--init_param``, a decoded model).
* :func:`unpack_packed_model` — a packed model (zip or tar from
  ``espnet2.bin.pack``, a local path or a model-zoo name) unpacked with
  ``espnet_model_zoo`` after :func:`check_packed_archive`: archive readable,
  no member escaping the target (:mod:`espnet_msrs.utils.safe_extract`),
  every ``meta.yaml`` entry a member of the archive; then every unpacked
  path must lie inside the cache and every torch file must pass
  :func:`check_torch_file`.

All errors are :class:`UnsafeFileError` (a ``ValueError``) with ``kind``:
``missing``, ``corrupt`` (truncated or not a torch file), ``unsafe`` (the
pickle wants objects outside the allow-list) or ``outside`` (a path that
leaves the archive).
"""

import datetime
import logging
import os
import pickle
import tarfile
import zipfile
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Union

import yaml

from espnet_msrs.utils.safe_extract import archive_type, check_archive

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

#: Suffixes of files unpacked from a model archive that are loaded as torch files.
TORCH_SUFFIXES = (".pth", ".pt", ".ckpt")

_NUMERIC_DTYPES = (
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
    "uint64", "float16", "float32", "float64", "complex64", "complex128",
)


class UnsafeFileError(ValueError):
    """A checkpoint, mask or packed model that must not (or cannot) be loaded.

    Attributes:
        path: The file.
        kind: ``missing``, ``corrupt``, ``unsafe`` or ``outside``.
    """

    def __init__(self, path: PathLike, kind: str, message: str):
        super().__init__(f"{path}: {message}")
        self.path = Path(path)
        self.kind = kind


def allowed_globals() -> List[Any]:
    """What ESPnet checkpoints hold besides tensors and containers.

    numpy scalars of numeric dtypes (the reporter's ``iter_time``,
    ``grad_norm``, …: ``np.float64``), their dtype classes, and
    ``datetime.timedelta`` (the reporter's ``time``). Object and void
    dtypes are not allowed.
    """
    import numpy as np

    try:
        scalar = np._core.multiarray.scalar
    except AttributeError:  # numpy < 2
        scalar = np.core.multiarray.scalar
    dtype_classes = {type(np.dtype(name)) for name in _NUMERIC_DTYPES}
    return [scalar, np.dtype, datetime.timedelta, *sorted(dtype_classes, key=str)]


def _file_format(path: Path) -> Optional[str]:
    """``"zip"`` (torch.save's format), ``"legacy"`` (a bare pickle, torch
    < 1.6) or None (neither)."""
    with path.open("rb") as f:
        head = f.read(4)
    if head == b"PK\x03\x04":
        return "zip"
    if head[:1] == b"\x80":  # pickle PROTO opcode
        return "legacy"
    return None


def load_torch_file(
    path: PathLike,
    map_location: Any = "cpu",
    what: str = "torch file",
    mmap: bool = False,
) -> Any:
    """``torch.load(path, weights_only=True)`` with :data:`allowed_globals`.

    Args:
        path: A file written by ``torch.save``.
        map_location: As for ``torch.load``.
        what: What the file is, for error messages ("checkpoint", "mask").
        mmap: Memory-map the tensors (zip-format files only) instead of
            reading them.

    Returns:
        The loaded object.

    Raises:
        UnsafeFileError: Missing, truncated/not a torch file, or holding
            objects outside the allow-list (then nothing of it ran).
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise UnsafeFileError(path, "missing", f"{what} not found")
    if path.stat().st_size == 0:
        raise UnsafeFileError(path, "corrupt", f"{what} is empty (an interrupted write?)")
    file_format = _file_format(path)
    if file_format is None:
        raise UnsafeFileError(
            path, "corrupt", f"{what} is not a file written by torch.save"
        )
    zip_format = file_format == "zip"
    try:
        with torch.serialization.safe_globals(allowed_globals()):
            return torch.load(
                path, map_location=map_location, weights_only=True,
                mmap=mmap and zip_format,
            )
    except pickle.UnpicklingError as e:
        text = str(e)
        if "Weights only load failed" in text or "Unsupported global" in text:
            unsafe = _unsafe_globals(path)
            raise UnsafeFileError(
                path, "unsafe",
                f"refusing to load this {what}: its pickle wants "
                f"{', '.join(unsafe) if unsafe else 'objects'} beyond tensors and "
                "plain containers, which could run code (nothing of it was run). "
                "Load only files you trust, and save models as state dicts",
            ) from None
        raise UnsafeFileError(
            path, "corrupt", f"not a readable {what} ({_first_line(e)})"
        ) from None
    except (RuntimeError, EOFError, KeyError, ValueError, OSError, zipfile.BadZipFile,
            AttributeError, TypeError, IndexError) as e:
        if zip_format:
            why = "truncated or corrupt (an interrupted write?)"
        else:
            why = "not a file written by torch.save (or truncated)"
        raise UnsafeFileError(
            path, "corrupt", f"{what} is {why}: {type(e).__name__}: {_first_line(e)}"
        ) from None


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else repr(e)


def _unsafe_globals(path: Path) -> List[str]:
    import torch

    try:
        with torch.serialization.safe_globals(allowed_globals()):
            return sorted(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # a pickle the static scan cannot follow: still refused
        return []


def check_torch_file(path: PathLike, what: str = "torch file") -> None:
    """Check that ``path`` loads with ``weights_only=True`` (see
    :func:`load_torch_file`) without reading its tensors into memory.

    Raises:
        UnsafeFileError: As :func:`load_torch_file`.
    """
    load_torch_file(path, map_location="cpu", what=what, mmap=True)


def check_state_dict_file(path: PathLike, what: str = "model file") -> None:
    """Check that ``path`` is a safe torch file holding a state dict
    (parameter name -> tensor), e.g. before ``--init_param``.

    Raises:
        UnsafeFileError: As :func:`load_torch_file`, or ``corrupt`` when the
            file holds something else than a state dict.
    """
    import torch

    state = load_torch_file(path, what=what, mmap=True)
    if not isinstance(state, Mapping) or not state:
        raise UnsafeFileError(
            path, "corrupt",
            f"{what} holds a {type(state).__name__}, expected a state dict "
            "(parameter name -> tensor)",
        )
    bad = [k for k, v in state.items() if not torch.is_tensor(v)]
    if bad:
        raise UnsafeFileError(
            path, "corrupt",
            f"{what} is not a state dict: entry {bad[0]!r} is a "
            f"{type(state[bad[0]]).__name__}, not a tensor"
            + (" (an ESPnet checkpoint.pth? use <N>epoch.pth or an average)"
               if "model" in state else ""),
        )


def check_init_params(specs: Optional[List[str]]) -> None:
    """Check the files of ESPnet's ``--init_param path[:src[:dst[:exclude]]]``
    (which ESPnet loads with ``weights_only=False``).

    Raises:
        UnsafeFileError: Naming the option and the file: missing, truncated,
            not a state dict, or carrying code.
    """
    for spec in specs or ():
        path = str(spec).split(":", 1)[0]
        check_state_dict_file(path, what=f"--init_param {spec}")


# ----------------------------------------------------------------- packed models
def _member_names(archive: Path) -> List[str]:
    if archive_type(archive) == "zip":
        with zipfile.ZipFile(archive) as zf:
            return zf.namelist()
    with tarfile.open(archive, "r:*") as tar:
        return tar.getnames()


def _read_member(archive: Path, name: str) -> bytes:
    if archive_type(archive) == "zip":
        with zipfile.ZipFile(archive) as zf:
            return zf.read(name)
    with tarfile.open(archive, "r:*") as tar:
        f = tar.extractfile(name)
        if f is None:
            raise KeyError(name)
        return f.read()


def _norm(name: str) -> str:
    return "/".join(p for p in name.replace("\\", "/").split("/") if p not in ("", "."))


def check_packed_archive(archive: PathLike, out_dir: PathLike = ".") -> Dict[str, Any]:
    """Check a packed model archive before anything is unpacked.

    * the archive opens (a truncated or corrupt zip/tar is named, not a bare
      ``BadZipFile``);
    * no member escapes ``out_dir`` (:func:`check_archive`);
    * ``meta.yaml`` exists, and each of its ``files`` and ``yaml_files``
      entries is a relative path without ``..`` naming a member of the
      archive (ESPnet's unpacker joins them to the cache directory, so an
      absolute path would load a file from anywhere).

    Returns:
        The parsed ``meta.yaml``.

    Raises:
        UnsafeFileError / ValueError: Naming the archive and the bad entry.
    """
    archive = Path(archive)
    if not archive.is_file():
        raise UnsafeFileError(archive, "missing", "packed model not found")
    try:
        names = _member_names(archive)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as e:
        raise UnsafeFileError(
            archive, "corrupt",
            f"not a readable model archive (truncated or corrupt?): "
            f"{type(e).__name__}: {_first_line(e)}",
        ) from None
    except ValueError as e:  # unsupported archive type
        raise UnsafeFileError(archive, "corrupt", _first_line(e)) from None
    check_archive(archive, out_dir)
    metas = [n for n in names if Path(n).name == "meta.yaml"]
    if not metas:
        raise UnsafeFileError(archive, "corrupt", "no meta.yaml: not an ESPnet packed model")
    try:
        meta = yaml.safe_load(_read_member(archive, metas[0])) or {}
    except (yaml.YAMLError, zipfile.BadZipFile, tarfile.TarError, OSError, EOFError) as e:
        raise UnsafeFileError(
            archive, "corrupt", f"{metas[0]} is unreadable: {_first_line(e)}"
        ) from None
    _check_meta(meta, {_norm(n) for n in names}, archive, metas[0])
    return meta


def _check_meta(meta: Any, members: set, source: Path, meta_name: str) -> None:
    """Each ``files``/``yaml_files`` entry: relative, no ``..``, a member."""
    if not isinstance(meta, dict):
        raise UnsafeFileError(source, "corrupt", f"{meta_name} is not a mapping")
    for section in ("files", "yaml_files"):
        entries = meta.get(section)
        if not isinstance(entries, dict):
            raise UnsafeFileError(
                source, "corrupt", f"{meta_name}: '{section}' must be a mapping"
            )
        for key, value in entries.items():
            value = str(value)
            parts = value.replace("\\", "/").split("/")
            if os.path.isabs(value) or value.startswith("\\") or ".." in parts:
                raise UnsafeFileError(
                    source, "outside",
                    f"{meta_name}: {section}.{key} = {value!r} points outside the "
                    "packed model; refusing to use it",
                )
            if _norm(value) not in members:
                raise UnsafeFileError(
                    source, "outside",
                    f"{meta_name}: {section}.{key} = {value!r} is not a file of "
                    "the packed model",
                )


def _check_unpacked(files: Mapping[str, Any], root: Path, source: str) -> Dict[str, str]:
    root = Path(os.path.realpath(root))
    checked: Dict[str, str] = {}
    for key, value in files.items():
        real = Path(os.path.realpath(value))
        if os.path.commonpath([real, root]) != str(root):
            raise UnsafeFileError(
                value, "outside",
                f"{source}: {key} resolves to {real}, outside the unpacked model "
                f"in {root}; refusing to use it",
            )
        if real.suffix in TORCH_SUFFIXES or key.endswith("model_file"):
            check_torch_file(real, what=f"{key} of {source}")
        checked[key] = str(value)
    return checked


def unpack_packed_model(
    model_tag: PathLike, cachedir: Optional[PathLike] = None
) -> Dict[str, str]:
    """Unpack a packed ESPnet model safely with ``espnet_model_zoo``.

    Args:
        model_tag: A local zip/tar written by ``espnet2.bin.pack`` or a
            model-zoo name / URL (downloaded first, then checked the same way).
        cachedir: ``ModelDownloader``'s cache (default: the zoo's own).

    Returns:
        ``Speech2Text`` keyword arguments (``asr_train_config``,
        ``asr_model_file``, …) as ESPnet's downloader returns them.

    Raises:
        UnsafeFileError / ValueError: See :func:`check_packed_archive` and
            :func:`check_torch_file`; the payload of a crafted model never runs.
    """
    from espnet_model_zoo.downloader import ModelDownloader

    downloader = ModelDownloader(cachedir=cachedir)
    cache = Path(downloader.cachedir)
    local = Path(model_tag)
    if not local.exists():
        local = Path(downloader.download(str(model_tag)))
    if local.is_dir():  # a Hugging Face snapshot: already unpacked
        meta_file = local / "meta.yaml"
        if not meta_file.is_file():
            raise UnsafeFileError(local, "corrupt", "no meta.yaml: not an ESPnet model")
        with meta_file.open(encoding="utf-8") as f:
            meta = yaml.safe_load(f)
        members = {_norm(str(p.relative_to(local))) for p in local.rglob("*")}
        _check_meta(meta, members, local, "meta.yaml")
        files = downloader.download_and_unpack(str(model_tag))
        # Hugging Face keeps the files of snapshots/<rev>/ as links into blobs/.
        root = local.parents[1] if local.parent.name == "snapshots" else local
        return _check_unpacked(files, root, str(model_tag))
    local = local.resolve()
    check_packed_archive(local, cache)
    files = downloader.download_and_unpack(str(local))
    logger.info(f"unpacked {local} into {cache}: {sorted(files)}")
    return _check_unpacked(files, cache, str(local))
