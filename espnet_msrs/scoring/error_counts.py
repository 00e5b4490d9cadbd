"""Edit counts of aligned transcripts, in sclite's columns (stage 12)."""

from dataclasses import dataclass
from typing import Dict, Union


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
