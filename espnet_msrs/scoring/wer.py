"""Word and character error rates with sclite's alignment (stage 12 scoring).

The project's own scorer, used when NIST SCTK's ``sclite`` is not installed
and, when it is, as a cross-check of sclite's numbers (DESIGN.md §4, stage 12;
issue 5 item 4). It reproduces what ESPnet's ``asr.sh`` scoring stage reports
through ``sclite -r ref.trn trn -h hyp.trn trn -i rm -o all stdout``:

* **Alignment.** sclite's dynamic programme (SCTK ``net_dp.c``) with its word
  distance (SCTK ``word.c:wwd_WORD``): correct 0, insertion 3, deletion 3,
  substitution 4 — *not* unit costs. These costs favour matches: unit-cost
  Levenshtein often splits errors differently into S/D/I and, for about 1 %
  of random utterance pairs, finds fewer errors than sclite (e.g. 6 instead
  of sclite's 7 for ref "a c b c a e b", hyp "f d f a c b d"). Using sclite's
  costs makes our counts equal its counts. Ties are broken as in sclite: a
  match or substitution wins every tie, and between a deletion and an
  insertion of equal cost the insertion is taken (back-tracing from the end).
* **Case.** sclite compares words case-insensitively unless run with ``-s``
  (ESPnet does not pass it); in its default 8-bit mode only ASCII letters are
  folded. ``case_sensitive=False`` (the default) does the same.
* **Tokens.** WER is on whitespace-separated words (``tokenize_text
  --token_type word``). CER is on characters exactly as ESPnet's scoring makes
  them (``tokenize_text --token_type char``, i.e. ``CharTokenizer``): the words
  are joined by single spaces and every space becomes the token ``<space>``,
  which is aligned and counted like any character. So "ab cd" has 5 reference
  characters ``a b <space> c d``.
* **Scope.** Tokens are compared literally. sclite gives a few spellings a
  special meaning (``@`` is a null word, ``(w)`` optionally deletable,
  ``{ a / b }`` alternatives); such tokens are reported by
  :func:`sclite_markup_tokens` since the two scorers may differ on them.

A reference utterance with no hypothesis counts as all deletions (and is
reported by name); an empty reference is an error.
"""

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

logger = logging.getLogger(__name__)

#: sclite's word distances (SCTK ``word.c:wwd_WORD``).
CORRECT_COST = 0
SUBSTITUTION_COST = 4
INSERTION_COST = 3
DELETION_COST = 3

#: ESPnet's ``CharTokenizer`` default ``space_symbol``.
SPACE_SYMBOL = "<space>"

#: Alignment operations: correct, substitution, deletion, insertion.
CORRECT, SUBSTITUTION, DELETION, INSERTION = "C", "S", "D", "I"

_ASCII_LOWER = str.maketrans(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz"
)

AlignmentStep = Tuple[str, Optional[str], Optional[str]]


@dataclass(frozen=True)
class ErrorCounts:
    """Edit counts of one or more aligned utterances (sclite's columns).

    Attributes:
        n_ref: Number of reference tokens (sclite's ``# Wrd``).
        correct: Correct tokens (``Corr``).
        substitutions: Substituted tokens (``Sub``).
        deletions: Deleted reference tokens (``Del``).
        insertions: Inserted hypothesis tokens (``Ins``).
        n_sent: Number of utterances (``# Snt``).
        n_sent_err: Utterances with at least one error (``S.Err``).
    """

    n_ref: int = 0
    correct: int = 0
    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    n_sent: int = 0
    n_sent_err: int = 0

    @property
    def errors(self) -> int:
        """Substitutions + deletions + insertions (sclite's ``Err``)."""
        return self.substitutions + self.deletions + self.insertions

    @property
    def error_rate(self) -> float:
        """Errors per reference token in percent (WER or CER)."""
        if self.n_ref == 0:
            return 0.0 if self.errors == 0 else float("inf")
        return 100.0 * self.errors / self.n_ref

    def __add__(self, other: "ErrorCounts") -> "ErrorCounts":
        return ErrorCounts(
            n_ref=self.n_ref + other.n_ref,
            correct=self.correct + other.correct,
            substitutions=self.substitutions + other.substitutions,
            deletions=self.deletions + other.deletions,
            insertions=self.insertions + other.insertions,
            n_sent=self.n_sent + other.n_sent,
            n_sent_err=self.n_sent_err + other.n_sent_err,
        )

    def to_dict(self) -> Dict[str, Union[int, float]]:
        """Plain dict for JSON: the counts, ``errors`` and ``error_rate`` (%)."""
        return {
            "n_ref": self.n_ref,
            "correct": self.correct,
            "substitutions": self.substitutions,
            "deletions": self.deletions,
            "insertions": self.insertions,
            "errors": self.errors,
            "n_sent": self.n_sent,
            "n_sent_err": self.n_sent_err,
            "error_rate": self.error_rate,
        }


def _fold(token: str, case_sensitive: bool) -> str:
    return token if case_sensitive else token.translate(_ASCII_LOWER)


def align(
    ref: Sequence[str], hyp: Sequence[str], case_sensitive: bool = False
) -> List[AlignmentStep]:
    """Align two token sequences the way sclite does.

    Args:
        ref: Reference tokens.
        hyp: Hypothesis tokens.
        case_sensitive: Compare tokens exactly; by default ASCII letters are
            folded to lower case like sclite without ``-s``.

    Returns:
        Steps ``(op, ref_token, hyp_token)`` from left to right, with ``op`` one
        of ``"C"``, ``"S"``, ``"D"`` (``hyp_token`` None), ``"I"``
        (``ref_token`` None).
    """
    r = [_fold(t, case_sensitive) for t in ref]
    h = [_fold(t, case_sensitive) for t in hyp]
    n, m = len(r), len(h)
    # cost[a][b]: best cost of ref[:a] against hyp[:b]; back[a][b]: the op.
    cost = [[0] * (m + 1) for _ in range(n + 1)]
    back = [[""] * (m + 1) for _ in range(n + 1)]
    for b in range(1, m + 1):
        cost[0][b] = cost[0][b - 1] + INSERTION_COST
        back[0][b] = INSERTION
    for a in range(1, n + 1):
        cost[a][0] = cost[a - 1][0] + DELETION_COST
        back[a][0] = DELETION
    for a in range(1, n + 1):
        ra = r[a - 1]
        prev, cur, bk = cost[a - 1], cost[a], back[a]
        for b in range(1, m + 1):
            if ra == h[b - 1]:
                sub = prev[b - 1] + CORRECT_COST
                sub_op = CORRECT
            else:
                sub = prev[b - 1] + SUBSTITUTION_COST
                sub_op = SUBSTITUTION
            dele = prev[b] + DELETION_COST
            ins = cur[b - 1] + INSERTION_COST
            # sclite's order: substitution/correct on any tie; insertion on a
            # deletion/insertion tie (SCTK net_dp.c calculate_internal_cells).
            if sub <= dele and sub <= ins:
                cur[b], bk[b] = sub, sub_op
            elif dele < ins:
                cur[b], bk[b] = dele, DELETION
            else:
                cur[b], bk[b] = ins, INSERTION
    steps: List[AlignmentStep] = []
    a, b = n, m
    while a > 0 or b > 0:
        op = back[a][b]
        if op == INSERTION:
            steps.append((op, None, hyp[b - 1]))
            b -= 1
        elif op == DELETION:
            steps.append((op, ref[a - 1], None))
            a -= 1
        else:
            steps.append((op, ref[a - 1], hyp[b - 1]))
            a -= 1
            b -= 1
    steps.reverse()
    return steps


def count_errors(steps: Sequence[AlignmentStep]) -> ErrorCounts:
    """Count one utterance's alignment.

    Args:
        steps: Output of :func:`align`.

    Returns:
        The counts with ``n_sent=1``.
    """
    n = {CORRECT: 0, SUBSTITUTION: 0, DELETION: 0, INSERTION: 0}
    for op, _, _ in steps:
        n[op] += 1
    errors = n[SUBSTITUTION] + n[DELETION] + n[INSERTION]
    return ErrorCounts(
        n_ref=n[CORRECT] + n[SUBSTITUTION] + n[DELETION],
        correct=n[CORRECT],
        substitutions=n[SUBSTITUTION],
        deletions=n[DELETION],
        insertions=n[INSERTION],
        n_sent=1,
        n_sent_err=int(errors > 0),
    )


def words_to_chars(words: Sequence[str], space_symbol: str = SPACE_SYMBOL) -> List[str]:
    """Character tokens as ESPnet's CER scoring makes them.

    Args:
        words: Whitespace-separated words of one utterance.
        space_symbol: Token standing for the space between two words.

    Returns:
        Characters of the words joined by single spaces, each space replaced
        by ``space_symbol``; e.g. ``["ab", "c"]`` -> ``["a", "b", "<space>", "c"]``.
    """
    return [space_symbol if c == " " else c for c in " ".join(words)]


def sclite_markup_tokens(tokens: Sequence[str]) -> List[str]:
    """Tokens to which sclite gives a special meaning (see module docstring).

    Args:
        tokens: Words of a transcript.

    Returns:
        The tokens ``@``, ``(w)``, ``{``, ``/``, ``}`` (and ones containing
        ``{`` or ``}``) among ``tokens``, in order.
    """
    return [
        t
        for t in tokens
        if t == "@"
        or (len(t) > 2 and t.startswith("(") and t.endswith(")"))
        or t == "/"
        or "{" in t
        or "}" in t
    ]


def read_text(path: Union[str, Path]) -> Dict[str, List[str]]:
    """Read a Kaldi-style ``text`` file: ``uttid word1 word2 ...`` per line.

    A line holding only the utterance id is an empty transcript; blank lines
    are skipped.

    Args:
        path: File to read.

    Returns:
        Words per utterance id, in file order.

    Raises:
        ValueError: If an utterance id occurs twice.
    """
    texts: Dict[str, List[str]] = {}
    with Path(path).open("r", encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            uttid, words = fields[0], fields[1:]
            if uttid in texts:
                raise ValueError(
                    f"{path}:{lineno}: utterance '{uttid}' appears twice; "
                    "utterance ids in a text file must be unique"
                )
            texts[uttid] = words
    return texts


@dataclass
class UtteranceScore:
    """Scores of one utterance.

    Attributes:
        uttid: Utterance id.
        word: Word-level counts.
        char: Character-level counts (ESPnet's ``<space>`` convention).
        alignment: Word alignment steps from :func:`align`.
        missing_hyp: True if the hypothesis file had no line for it.
    """

    uttid: str
    word: ErrorCounts
    char: ErrorCounts
    alignment: List[AlignmentStep]
    missing_hyp: bool = False


@dataclass
class CorpusScore:
    """Scores of a test set.

    Attributes:
        word: Word counts summed over utterances.
        char: Character counts summed over utterances.
        utterances: Per-utterance scores in reference order.
        missing_hyps: Reference utterances without a hypothesis (scored as
            all deletions).
        extra_hyps: Hypothesis utterances without a reference (not scored).
        markup_tokens: Reference/hypothesis tokens with a special meaning to
            sclite (see :func:`sclite_markup_tokens`), sorted and unique.
    """

    word: ErrorCounts = field(default_factory=ErrorCounts)
    char: ErrorCounts = field(default_factory=ErrorCounts)
    utterances: List[UtteranceScore] = field(default_factory=list)
    missing_hyps: List[str] = field(default_factory=list)
    extra_hyps: List[str] = field(default_factory=list)
    markup_tokens: List[str] = field(default_factory=list)

    @property
    def n_utts(self) -> int:
        """Number of scored (reference) utterances."""
        return len(self.utterances)

    @property
    def wer(self) -> float:
        """Word error rate in percent."""
        return self.word.error_rate

    @property
    def cer(self) -> float:
        """Character error rate in percent."""
        return self.char.error_rate


def check_references(ref: Mapping[str, Sequence[str]], ref_name: str = "ref") -> None:
    """Refuse an empty reference set or an empty reference transcript.

    Args:
        ref: Reference words per utterance id.
        ref_name: Name of the reference (file) for messages.

    Raises:
        ValueError: Naming the first utterance with an empty reference.
    """
    if not ref:
        raise ValueError(f"{ref_name}: no reference utterances to score")
    for uttid, words in ref.items():
        if len(words) == 0:
            raise ValueError(
                f"{ref_name}: utterance '{uttid}' has an empty reference "
                "transcript; every reference must have at least one word"
            )


def score_texts(
    ref: Mapping[str, Sequence[str]],
    hyp: Mapping[str, Sequence[str]],
    case_sensitive: bool = False,
    ref_name: str = "ref",
    hyp_name: str = "hyp",
) -> CorpusScore:
    """Score hypotheses against references (WER and CER).

    Args:
        ref: Reference words per utterance id.
        hyp: Hypothesis words per utterance id.
        case_sensitive: See :func:`align`.
        ref_name: Name of the reference for messages.
        hyp_name: Name of the hypothesis for messages.

    Returns:
        The corpus score; utterances in reference order.

    Raises:
        ValueError: If there are no references or one is empty.
    """
    check_references(ref, ref_name)
    score = CorpusScore()
    markup = set()
    for uttid, ref_words in ref.items():
        missing = uttid not in hyp
        hyp_words = [] if missing else list(hyp[uttid])
        if missing:
            score.missing_hyps.append(uttid)
        markup.update(sclite_markup_tokens(ref_words))
        markup.update(sclite_markup_tokens(hyp_words))
        steps = align(ref_words, hyp_words, case_sensitive)
        word = count_errors(steps)
        char = count_errors(
            align(words_to_chars(ref_words), words_to_chars(hyp_words), case_sensitive)
        )
        score.utterances.append(UtteranceScore(uttid, word, char, steps, missing))
        score.word = score.word + word
        score.char = score.char + char
    score.extra_hyps = [u for u in hyp if u not in ref]
    score.markup_tokens = sorted(markup)
    if score.missing_hyps:
        logger.warning(
            f"{hyp_name}: no hypothesis for {len(score.missing_hyps)} of "
            f"{len(ref)} reference utterances (scored as deletions): "
            + " ".join(score.missing_hyps[:10])
            + (" ..." if len(score.missing_hyps) > 10 else "")
        )
    if score.extra_hyps:
        logger.warning(
            f"{hyp_name}: {len(score.extra_hyps)} utterances have no reference in "
            f"{ref_name} and are not scored: "
            + " ".join(score.extra_hyps[:10])
            + (" ..." if len(score.extra_hyps) > 10 else "")
        )
    if score.markup_tokens:
        logger.warning(
            f"tokens with a special meaning to sclite are scored literally: "
            f"{' '.join(score.markup_tokens[:10])}"
        )
    return score


def score_files(
    ref_text: Union[str, Path],
    hyp_text: Union[str, Path],
    case_sensitive: bool = False,
) -> CorpusScore:
    """Score two Kaldi-style text files (see :func:`score_texts`).

    Args:
        ref_text: Reference ``text`` file.
        hyp_text: Hypothesis ``text`` file (e.g. ESPnet's decode ``text``).
        case_sensitive: See :func:`align`.

    Returns:
        The corpus score.
    """
    return score_texts(
        read_text(ref_text),
        read_text(hyp_text),
        case_sensitive=case_sensitive,
        ref_name=str(ref_text),
        hyp_name=str(hyp_text),
    )
