"""Corpus paths given in a recipe's ``db.sh``, id lists, common options.

:func:`check_corpus_dir` turns a wrong corpus path into an error that names
the ``db.sh`` variable to fix; :func:`read_id_list` reads the id lists that
select utterances (VoxCeleb2's English clips, LRS3's validation ids);
:func:`add_av_corpus_arguments` and :func:`media_to_prepare` are the options
that the audio-visual corpus preparations (LRS3, VoxCeleb2) share.
"""

import argparse
import os
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

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


def add_av_corpus_arguments(
    parser: argparse.ArgumentParser, local_dir: str, landmark_variable: str, num_valid: int
) -> None:
    """The options of an audio-visual corpus preparation: outputs, modality,
    validation split, landmarks, reports and the job options.

    Args:
        parser: The preparation's parser.
        local_dir: Its working directory (``data/local/<corpus>``): wavs,
            detected landmarks and reports go there by default.
        landmark_variable: The ``db.sh`` variable of its landmark tree.
        num_valid: Default size of the random validation set.
    """
    from espnet2.utils.types import str2bool

    from espnet_msrs.utils.cli import add_job_arguments

    parser.add_argument("--data_dir", default="data", help="Output data root")
    parser.add_argument("--modality", default="av", choices=["audio", "video", "av"],
                        help="audio: no video/landmark files; video: no audio extraction")
    parser.add_argument("--extract_audio", type=str2bool, default=None,
                        help="Write 16 kHz wavs (default: true unless --modality video)")
    parser.add_argument("--wav_dir", default=f"{local_dir}/wav")
    parser.add_argument("--num_valid", type=int, default=num_valid,
                        help="Random validation utterances")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the validation draw")
    parser.add_argument("--landmark_dir", default=None,
                        help=f"Landmark tree mirroring the corpus (db.sh: {landmark_variable})")
    parser.add_argument("--detected_landmark_dir", default=f"{local_dir}/landmarks")
    parser.add_argument("--report_dir", default=local_dir)
    add_job_arguments(parser)


def media_to_prepare(modality: str, extract_audio: Optional[bool]) -> Tuple[bool, bool]:
    """(list videos and landmarks, extract audio) for a modality; audio is
    extracted unless the modality is video, or as ``extract_audio`` says."""
    with_video = modality != "audio"
    extract = modality != "video" if extract_audio is None else extract_audio
    return with_video, extract
