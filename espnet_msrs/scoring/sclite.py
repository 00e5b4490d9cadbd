"""Run NIST SCTK's ``sclite`` the way ESPnet's ``asr.sh`` scoring stage does.

Stage 12 (DESIGN.md §4) scores with sclite when it is installed (Debian/Ubuntu:
``apt-get install sctk``, binary at ``/usr/lib/sctk/bin/sclite``; ESPnet's
``tools/installers/install_sctk.sh`` puts it on ``PATH``). Transcripts are
written as ``trn`` files, one utterance per line ``words... (spk-uttid)``,
which is ESPnet's convention for ``-i rm`` (sclite takes the speaker from the
text before the first ``-``; ESPnet writes ``(utt2spk[utt]-utt)``). sclite is
run as ``sclite -r ref.trn trn -h hyp.trn trn -i rm -o all stdout`` and its
``Sum`` (raw counts) row is parsed into the same
:class:`~espnet_msrs.scoring.error_counts.ErrorCounts` as jiwer's counts
(the scorer used where sclite is not installed).

sclite silently skips a reference utterance that has no line in the
hypothesis file; :func:`write_trn_pair` writes an empty hypothesis line for
it instead, so that it counts as all deletions with either scorer.
"""

import logging
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

from espnet_msrs.scoring.error_counts import ErrorCounts
from espnet_msrs.utils import atomic

logger = logging.getLogger(__name__)

#: Where Debian's ``sctk`` package installs sclite (not on ``PATH``).
SCLITE_FALLBACK_PATHS = ("/usr/lib/sctk/bin/sclite",)

# "| Sum  |    3      9 |    5      1      3      1      5      3 |"
_SUM_RE = re.compile(
    r"^\s*\|\s*Sum\s*\|\s*(\d+)\s+(\d+)\s*\|"
    r"\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*\|\s*$"
)
# "| Sum/Avg|    3      9 | 55.6   11.1   33.3   11.1   55.6  100.0 |"
_SUM_AVG_RE = re.compile(
    r"^\s*\|\s*Sum/Avg\s*\|\s*(\d+)\s+(\d+)\s*\|((?:\s*[-\d.]+){6})\s*\|\s*$"
)
# "id: (spk1-utt1)" followed by "Scores: (#C #S #D #I) 3 1 0 1"
_ID_RE = re.compile(r"^id:\s*\((.*)\)\s*$")
_SCORES_RE = re.compile(r"^Scores:\s*\(#C #S #D #I\)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)")


def find_sclite() -> Optional[str]:
    """Locate the sclite binary.

    Returns:
        ``sclite`` on ``PATH`` if there is one, else the first executable of
        :data:`SCLITE_FALLBACK_PATHS`, else None.
    """
    found = shutil.which("sclite")
    if found:
        return found
    for path in SCLITE_FALLBACK_PATHS:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def trn_id(uttid: str, speaker: Optional[str] = None) -> str:
    """The ``(spk-uttid)`` id ESPnet writes for ``sclite -i rm``.

    Args:
        uttid: Utterance id.
        speaker: Speaker id (``utt2spk``); the utterance id itself if None,
            which is what ESPnet writes when ``utt2spk`` maps an utterance to
            itself.

    Returns:
        E.g. ``"(spk1-spk1_utt3)"``.

    Raises:
        ValueError: If an id contains whitespace or parentheses, which would
            break the ``trn`` format.
    """
    speaker = uttid if speaker is None else speaker
    for what, value in (("utterance", uttid), ("speaker", speaker)):
        if not value or re.search(r"[\s()]", value):
            raise ValueError(
                f"{what} id '{value}' cannot be written to a sclite trn file: "
                "ids must be non-empty without whitespace or parentheses"
            )
    return f"({speaker}-{uttid})"


def write_trn(
    path: Union[str, Path],
    texts: Mapping[str, Sequence[str]],
    uttids: Optional[Sequence[str]] = None,
    utt2spk: Optional[Mapping[str, str]] = None,
) -> None:
    """Write a sclite ``trn`` file: ``tok1 tok2 ... (spk-uttid)`` per line.

    Args:
        path: Output file.
        texts: Tokens per utterance id.
        uttids: Utterances to write, in this order; an utterance missing from
            ``texts`` gets an empty transcript. Default: all of ``texts``.
        utt2spk: Speaker per utterance (see :func:`trn_id`).
    """
    uttids = list(texts) if uttids is None else uttids
    utt2spk = {} if utt2spk is None else utt2spk
    with atomic.atomic_open(path) as f:
        for uttid in uttids:
            tokens = " ".join(texts.get(uttid, ()))
            ident = trn_id(uttid, utt2spk.get(uttid))
            f.write(f"{tokens} {ident}\n" if tokens else f"{ident}\n")


def write_trn_pair(
    ref_path: Union[str, Path],
    hyp_path: Union[str, Path],
    ref: Mapping[str, Sequence[str]],
    hyp: Mapping[str, Sequence[str]],
    utt2spk: Optional[Mapping[str, str]] = None,
) -> None:
    """Write reference and hypothesis ``trn`` files over the reference's utterances.

    Hypotheses without a reference are left out; references without a
    hypothesis get an empty hypothesis line (all deletions).

    Args:
        ref_path: Reference trn file to write.
        hyp_path: Hypothesis trn file to write.
        ref: Reference tokens per utterance id.
        hyp: Hypothesis tokens per utterance id.
        utt2spk: Speaker per utterance (see :func:`trn_id`).
    """
    uttids = list(ref)
    write_trn(ref_path, ref, uttids, utt2spk)
    write_trn(hyp_path, hyp, uttids, utt2spk)


def parse_sclite_report(report: str) -> ErrorCounts:
    """Parse the totals of a sclite report made with ``-o rsum`` (or ``all``).

    Args:
        report: sclite's stdout.

    Returns:
        The counts of the raw summary's ``Sum`` row.

    Raises:
        ValueError: If the report has no ``Sum`` row, or its ``Sum/Avg``
            percentages (when present) disagree with the counts.
    """
    counts = None
    percents = None
    for line in report.splitlines():
        m = _SUM_RE.match(line)
        if m and counts is None:
            n_sent, n_ref, corr, sub, dele, ins, err, sent_err = map(int, m.groups())
            counts = ErrorCounts(
                n_ref=n_ref,
                correct=corr,
                substitutions=sub,
                deletions=dele,
                insertions=ins,
                n_sent=n_sent,
                n_sent_err=sent_err,
            )
            if err != counts.errors:
                raise ValueError(f"sclite Sum row is inconsistent: {line.strip()}")
        m = _SUM_AVG_RE.match(line)
        if m and percents is None:
            percents = [float(x) for x in m.group(3).split()]
    if counts is None:
        raise ValueError(
            "no 'Sum' row of counts in the sclite report; run sclite with "
            "'-o rsum stdout' or '-o all stdout'"
        )
    if percents is not None and counts.n_ref > 0:
        err_pct = percents[4]
        if abs(err_pct - counts.error_rate) > 0.051:
            raise ValueError(
                f"sclite Sum/Avg error rate {err_pct} disagrees with its counts "
                f"({counts.errors}/{counts.n_ref})"
            )
    return counts


def parse_sclite_utterances(report: str) -> Dict[str, Tuple[int, int, int, int]]:
    """Per-utterance counts from the alignment dump of ``-o pralign`` (or ``all``).

    Args:
        report: sclite's stdout.

    Returns:
        ``(correct, substitutions, deletions, insertions)`` per trn id as
        written (e.g. ``"spk1-utt1"``, without parentheses).
    """
    result: Dict[str, Tuple[int, int, int, int]] = {}
    ident = None
    for line in report.splitlines():
        m = _ID_RE.match(line.strip())
        if m:
            ident = m.group(1)
            continue
        m = _SCORES_RE.match(line.strip())
        if m and ident is not None:
            c, s, d, i = map(int, m.groups())
            result[ident] = (c, s, d, i)
            ident = None
    return result


def run_sclite(
    ref_trn: Union[str, Path],
    hyp_trn: Union[str, Path],
    sclite: Optional[str] = None,
    extra_args: Sequence[str] = (),
) -> str:
    """Run ``sclite -r ref trn -h hyp trn -i rm -o all stdout``.

    Args:
        ref_trn: Reference trn file.
        hyp_trn: Hypothesis trn file.
        sclite: sclite binary; :func:`find_sclite` if None.
        extra_args: Further options placed first (like ESPnet's ``score_opts``,
            e.g. ``["-s"]`` for case-sensitive scoring).

    Returns:
        sclite's report (stdout).

    Raises:
        FileNotFoundError: If sclite is not installed.
        RuntimeError: If sclite fails or reports an error.
    """
    sclite = sclite or find_sclite()
    if sclite is None:
        raise FileNotFoundError(
            "sclite not found on PATH nor at "
            f"{', '.join(SCLITE_FALLBACK_PATHS)}; install it "
            "(apt-get install sctk) or score with jiwer (--scorer jiwer)"
        )
    cmd: List[str] = [
        sclite,
        *extra_args,
        "-r",
        str(ref_trn),
        "trn",
        "-h",
        str(hyp_trn),
        "trn",
        "-i",
        "rm",
        "-o",
        "all",
        "stdout",
    ]
    logger.info(f"running: {' '.join(cmd)}")
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    if proc.returncode != 0 or "Error" in proc.stderr:
        raise RuntimeError(
            f"sclite failed (exit code {proc.returncode}): {' '.join(cmd)}\n"
            f"{proc.stderr.strip()}"
        )
    return proc.stdout


def sclite_score(
    ref: Mapping[str, Sequence[str]],
    hyp: Mapping[str, Sequence[str]],
    work_dir: Union[str, Path],
    name: str = "wrd",
    utt2spk: Optional[Mapping[str, str]] = None,
    sclite: Optional[str] = None,
    case_sensitive: bool = False,
) -> Tuple[ErrorCounts, str]:
    """Score token sequences with sclite.

    Writes ``ref.<name>.trn``, ``hyp.<name>.trn`` and sclite's report
    ``sclite.<name>.txt`` into ``work_dir``.

    Args:
        ref: Reference tokens (words, or characters for CER) per utterance.
        hyp: Hypothesis tokens per utterance.
        work_dir: Directory for the trn files and the report.
        name: Tag of the files (``"wrd"``, ``"char"``).
        utt2spk: Speaker per utterance (see :func:`trn_id`).
        sclite: sclite binary; :func:`find_sclite` if None.
        case_sensitive: Pass ``-s`` to sclite.

    Returns:
        sclite's totals and its full report.
    """
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    ref_trn = work_dir / f"ref.{name}.trn"
    hyp_trn = work_dir / f"hyp.{name}.trn"
    write_trn_pair(ref_trn, hyp_trn, ref, hyp, utt2spk)
    report = run_sclite(ref_trn, hyp_trn, sclite, ["-s"] if case_sensitive else [])
    atomic.write_text(work_dir / f"sclite.{name}.txt", report)
    return parse_sclite_report(report), report


def sclite_utterance_counts(
    ref: Mapping[str, Sequence[str]],
    hyp: Mapping[str, Sequence[str]],
    work_dir: Union[str, Path],
    sclite: Optional[str] = None,
    case_sensitive: bool = False,
) -> Dict[str, Tuple[int, int, int, int]]:
    """Per-utterance ``(correct, substitutions, deletions, insertions)`` by sclite.

    Each utterance is its own speaker (``(uttid-uttid)``); files go to
    ``work_dir`` as for :func:`sclite_score`.
    """
    _, report = sclite_score(ref, hyp, work_dir, "utt", None, sclite, case_sensitive)
    by_id = {k.lower(): v for k, v in parse_sclite_utterances(report).items()}
    counts = {}
    for uttid in ref:
        key = trn_id(uttid)[1:-1].lower()
        if key not in by_id:
            raise ValueError(f"sclite report has no alignment of utterance {uttid!r}")
        counts[uttid] = by_id[key]
    return counts
