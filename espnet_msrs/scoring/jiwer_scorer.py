"""Scoring with jiwer where sclite is not installed (stage 12).

jiwer aligns with unit costs (Levenshtein), sclite with correct 0,
insertion 3, deletion 3, substitution 4. Unit costs minimise S+D+I, so
jiwer's error total is never above sclite's; it is below it for a few
utterances whose best alignment under sclite's costs has more edits, and
the S/D/I split can differ. ``tools/measure_scorers.py`` measures both on
simulated and real decodings; README ("Scoring") gives the numbers. Which
scorer produced a result is recorded in ``result.json`` and RESULTS.md.

Tokens are compared as sclite compares them by default (ESPnet passes no
``-s``): ASCII letters case-folded unless ``case_sensitive``.
"""

from typing import Dict, List, Mapping, Sequence, Tuple

from espnet_msrs.scoring.error_counts import ErrorCounts

#: (correct, substitutions, deletions, insertions)
Counts = Tuple[int, int, int, int]
#: Alignment of one utterance: (op, ref token or None, hyp token or None), op in C S D I.
Alignment = List[Tuple[str, object, object]]

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_OPS = {"equal": "C", "substitute": "S", "delete": "D", "insert": "I"}


def _fold(tokens: Sequence[str], case_sensitive: bool) -> List[str]:
    return list(tokens) if case_sensitive else [t.translate(_ASCII_LOWER) for t in tokens]


def jiwer_align(
    ref: Mapping[str, Sequence[str]],
    hyp: Mapping[str, Sequence[str]],
    case_sensitive: bool = False,
) -> Dict[str, Alignment]:
    """Align each reference utterance with its hypothesis (missing: empty).

    Args:
        ref: Reference tokens per utterance (none empty).
        hyp: Hypothesis tokens per utterance.
        case_sensitive: Compare tokens exactly (default: fold ASCII case).

    Returns:
        Per utterance, in reference order, the alignment steps.
    """
    import jiwer

    uttids = list(ref)
    refs = [_fold(ref[u], case_sensitive) for u in uttids]
    hyps = [_fold(hyp.get(u, ()), case_sensitive) for u in uttids]
    out = jiwer.process_words([" ".join(r) for r in refs], [" ".join(h) for h in hyps])
    aligned: Dict[str, Alignment] = {}
    for u, r, h, chunks in zip(uttids, refs, hyps, out.alignments):
        steps: Alignment = []
        for c in chunks:
            op = _OPS[c.type]
            rs, hs = r[c.ref_start_idx:c.ref_end_idx], h[c.hyp_start_idx:c.hyp_end_idx]
            if op == "D":
                steps += [("D", t, None) for t in rs]
            elif op == "I":
                steps += [("I", None, t) for t in hs]
            else:
                steps += [(op, a, b) for a, b in zip(rs, hs)]
        aligned[u] = steps
    return aligned


def utterance_counts(alignment: Alignment) -> Counts:
    """(correct, substitutions, deletions, insertions) of one alignment."""
    ops = [op for op, _, _ in alignment]
    return ops.count("C"), ops.count("S"), ops.count("D"), ops.count("I")


def jiwer_utterance_counts(
    ref: Mapping[str, Sequence[str]],
    hyp: Mapping[str, Sequence[str]],
    case_sensitive: bool = False,
) -> Dict[str, Counts]:
    """Per-utterance (C, S, D, I) counts (see :func:`jiwer_align`)."""
    return {u: utterance_counts(a) for u, a in jiwer_align(ref, hyp, case_sensitive).items()}


def total_counts(per_utt: Mapping[str, Counts]) -> ErrorCounts:
    """Sum per-utterance (C, S, D, I) into sclite's totals."""
    c = s = d = i = err_sents = 0
    for cc, ss, dd, ii in per_utt.values():
        c, s, d, i = c + cc, s + ss, d + dd, i + ii
        err_sents += int(ss + dd + ii > 0)
    return ErrorCounts(n_ref=c + s + d, correct=c, substitutions=s, deletions=d,
                       insertions=i, n_sent=len(per_utt), n_sent_err=err_sents)
