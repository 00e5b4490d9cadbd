"""The one transcript normaliser of the recipes, and token-id label files.

Every transcript that enters a data directory goes through
:func:`normalize_text`: LRS3's ``Text:`` lines, VoxCeleb2 labels CSVs,
automatic labels from a pretrained model, LibriSpeech transcripts. So the
token list (stage 5) never sees punctuation (a comma must not become a
token) and texts from different corpora agree.

Labels files of the Auto-AVSR preparation hold SentencePiece token ids in the
text column (``vox2,dev/mp4/id00012/21Uxsk56VDQ/00001.mp4,193,4363 4931 1204``)
instead of words. :func:`looks_like_token_ids` spots them, and
:func:`read_token_units` / :func:`ids_to_text` convert them back to words
given the unit list they were made with (Auto-AVSR's
``unigram5000_units.txt``: ``<piece> <id>`` per line).
"""

import re
import unicodedata
from pathlib import Path
from typing import Dict, Iterable, Mapping, Union

_MARKER = re.compile(r"\{[^}]*\}")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})
_TOKEN_IDS = re.compile(r"^\s*\d+(\s+\d+)*\s*$")
#: SentencePiece's word-boundary mark.
WORD_BOUNDARY = "\u2581"


def normalize_text(text: str) -> str:
    """Upper case words: markers, punctuation and extra spaces removed.

    * ``{LG}``/``{NS}``-style markers (LRS3) are removed;
    * letters (any script, accents kept; NFC), digits and apostrophes inside
      or around words are kept (typographic apostrophes become ``'``);
    * every other character (``, . ? ! ; : " - ( )`` …) separates words;
    * the result is upper case with single spaces.

    Examples:
        >>> normalize_text("well, I don't {NS} know - it's FINE.")
        "WELL I DON'T KNOW IT'S FINE"
    """
    text = unicodedata.normalize("NFC", _MARKER.sub(" ", text)).translate(_APOSTROPHES)
    kept = [c if (c.isalnum() or c == "'") else " " for c in text.upper()]
    words = ("".join(kept)).split()
    return " ".join(w for w in words if w.strip("'"))


def looks_like_token_ids(texts: Iterable[str]) -> bool:
    """True when every non-empty text is a sequence of integers (token ids)
    and at least one has several (a transcript "2017" alone is not enough)."""
    seen = several = False
    for text in texts:
        if not text.strip():
            continue
        if not _TOKEN_IDS.match(text):
            return False
        seen = True
        several = several or len(text.split()) > 1
    return seen and several


def read_token_units(path: Union[str, Path]) -> Dict[int, str]:
    """Id -> piece from a unit list of ``<piece> <id>`` lines.

    Raises:
        ValueError: A line that is not ``<piece> <integer id>`` or an id
            given twice (naming the file and line).
    """
    from espnet_msrs.utils.data_dir import iter_lines

    units: Dict[int, str] = {}
    for lineno, line in iter_lines(path):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise ValueError(
                f"{path}:{lineno}: expected '<piece> <id>' (a unit list such as "
                f"Auto-AVSR's unigram5000_units.txt), got {line!r}"
            )
        unit_id = int(parts[1])
        if unit_id in units:
            raise ValueError(f"{path}:{lineno}: id {unit_id} given twice")
        units[unit_id] = parts[0]
    return units


def ids_to_text(ids: str, units: Mapping[int, str], where: str = "") -> str:
    """Join the pieces of space-separated token ids into normalised words.

    Raises:
        ValueError: An id that the unit list lacks (naming ``where``).
    """
    pieces = []
    for token in ids.split():
        if int(token) not in units:
            raise ValueError(f"{where}: token id {token} is not in the unit list")
        pieces.append(units[int(token)])
    return normalize_text("".join(pieces).replace(WORD_BOUNDARY, " ").replace("<unk>", " "))
