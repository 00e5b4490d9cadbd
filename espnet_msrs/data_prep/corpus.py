"""Corpus paths given in a recipe's ``db.sh``, and id lists.

:func:`check_corpus_dir` turns a wrong corpus path into an error that names
the ``db.sh`` variable to fix; :func:`read_id_list` reads the id lists that
select utterances (VoxCeleb2's English clips, LRS3's validation ids).
"""

import os
from pathlib import Path
from typing import List, Optional, Sequence, Union

from espnet_msrs.utils.data_dir import iter_lines

PathLike = Union[str, os.PathLike]


class CorpusPathError(ValueError):
    """A corpus path of ``db.sh`` is unset, missing or of the wrong layout."""


def check_corpus_dir(
    path: Optional[str],
    variable: str,
    expected: Sequence[str] = (),
    what: str = "",
) -> Path:
    """Check a corpus root given in ``db.sh``.

    Args:
        path: The value of the ``db.sh`` variable (may be empty/None).
        variable: Its name (``LRS3``, ``VOXCELEB2``, ``LIBRISPEECH``).
        expected: Sub-directories that must exist under ``path``.
        what: Short description of the expected layout for the message.

    Returns:
        The resolved path.

    Raises:
        CorpusPathError: The message says which variable of ``db.sh`` to set.
    """
    hint = f" ({what})" if what else ""
    if not path:
        raise CorpusPathError(
            f"{variable} is not set: set {variable} in db.sh (or the environment) "
            f"to the corpus directory{hint}"
        )
    root = Path(path).expanduser()
    if not root.is_dir():
        raise CorpusPathError(
            f"{variable}={path} is not a directory: fix {variable} in db.sh{hint}"
        )
    missing = [sub for sub in expected if not (root / sub).is_dir()]
    if missing:
        raise CorpusPathError(
            f"{variable}={path} lacks {', '.join(missing)}: fix {variable} in db.sh "
            f"to the corpus directory{hint}"
        )
    return root.resolve()


def read_id_list(path: PathLike) -> List[str]:
    """Non-empty, non-comment lines of a list file (first field of each)."""
    out = []
    for _, line in iter_lines(path):
        line = line.strip()
        if line and not line.startswith("#"):
            out.append(line.split()[0])
    return out
