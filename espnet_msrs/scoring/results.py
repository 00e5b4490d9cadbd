"""Stage-12 outputs: per-test-set score files and the recipe's ``RESULTS.md``.

:func:`score_dir` scores one decoded test set (WER and CER) with NIST
SCTK's ``sclite`` when it is installed (:mod:`espnet_msrs.scoring.sclite`,
run as ESPnet's ``asr.sh`` runs it) and with jiwer otherwise
(:mod:`espnet_msrs.scoring.jiwer_scorer`), and writes ``result.txt``
(sclite-style summary, so ``grep -e Avg -e SPKR`` works as on ESPnet's
files, and the alignments) and ``result.json``; both name the scorer.
:func:`make_results_md` writes ``RESULTS.md`` with the environment, WER as a
function of SNR in the layout of MSRS Table 3 (Fernandez-Lopez et al.,
Interspeech 2024: rows = models, columns = −7.5, −2.5, 2.5, 7.5, 12.5 dB and
clean), WER/CER per test set with its scorer, and parameters, sparsity and
ranks per model.

Tokens: WER is on whitespace-separated words; CER on characters exactly as
ESPnet's scoring makes them (``CharTokenizer``): the words joined by single
spaces, each space the token ``<space>``, aligned and counted like any
character. A reference utterance with no hypothesis counts as all deletions
(and is named); an empty reference is an error.
"""

import datetime
import json
import logging
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from espnet_msrs.scoring import sclite as sclite_mod
from espnet_msrs.scoring.error_counts import ErrorCounts
from espnet_msrs.scoring.jiwer_scorer import jiwer_align, total_counts, utterance_counts
from espnet_msrs.utils import atomic
from espnet_msrs.utils.data_dir import read_kv

logger = logging.getLogger(__name__)

#: SNR columns of MSRS Table 3 (dB), then the clean condition.
SNR_COLUMNS = (-7.5, -2.5, 2.5, 7.5, 12.5, "clean")
#: Placeholder of a missing table cell.
MISSING = "–"
#: ESPnet's ``CharTokenizer`` default ``space_symbol``.
SPACE_SYMBOL = "<space>"
#: ``--scorer`` values: sclite if installed else jiwer, or one of them.
SCORERS = ("auto", "sclite", "jiwer")


def read_transcripts(path: Union[str, Path]) -> Dict[str, List[str]]:
    """Words per utterance of a Kaldi ``text`` file (an id alone: empty).

    Raises:
        ValueError: A duplicate id, naming the file and line.
    """
    return {u: t.split() for u, t in read_kv(path, allow_empty_value=True).items()}


def words_to_chars(words: Sequence[str]) -> List[str]:
    """ESPnet's CER tokens: ``["ab", "c"]`` -> ``["a", "b", "<space>", "c"]``."""
    return [SPACE_SYMBOL if c == " " else c for c in " ".join(words)]


def _check_references(ref: Mapping[str, Sequence[str]], ref_name: str) -> None:
    if not ref:
        raise ValueError(f"{ref_name}: no reference utterances to score")
    for uttid, words in ref.items():
        if not words:
            raise ValueError(
                f"{ref_name}: utterance '{uttid}' has an empty reference "
                "transcript; every reference must have at least one word"
            )


def _read_utt2spk(path: Path) -> Dict[str, str]:
    utt2spk = read_kv(path)
    for uttid, spk in utt2spk.items():
        if len(spk.split()) != 1:
            raise ValueError(f"{path}: utterance {uttid}: expected one speaker, got {spk!r}")
    return dict(utt2spk)


def _summary_block(title: str, unit: str, counts: ErrorCounts) -> List[str]:
    """sclite-style percentage (``Sum/Avg``) and count (``Sum``) rows."""

    def pct(x: int, n: int) -> float:
        return 100.0 * x / n if n else 0.0

    def row(label: str, values: Sequence[str]) -> str:
        return (
            f"| {label:<7} | {counts.n_sent:5d} {counts.n_ref:7d} | "
            + " ".join(f"{v:>6}" for v in values)
            + " |"
        )

    c = counts
    raw = [c.correct, c.substitutions, c.deletions, c.insertions, c.errors]
    header = (
        f"| {'SPKR':<7} | {'# Snt':>5} {'# Wrd':>7} | "
        + " ".join(f"{h:>6}" for h in ("Corr", "Sub", "Del", "Ins", "Err", "S.Err"))
        + " |"
    )
    width = len(header) - 2
    return [
        f"{title} ({unit} tokens)",
        "," + "-" * width + ".",
        header,
        "|" + "-" * width + "|",
        row("Sum/Avg", [f"{pct(x, c.n_ref):.1f}" for x in raw]
            + [f"{pct(c.n_sent_err, c.n_sent):.1f}"]),
        row("Sum", [str(x) for x in raw + [c.n_sent_err]]),
        "`" + "-" * width + "'",
        f"{title}: {c.error_rate:.2f} % "
        f"[ {c.errors} / {c.n_ref}, {c.insertions} ins, "
        f"{c.deletions} del, {c.substitutions} sub ]",
        "",
    ]


def _alignment_lines(alignments: Mapping[str, list], missing: Sequence[str]) -> List[str]:
    """Per-utterance word alignments (errors upper-cased, as sclite shows them)."""
    lines = ["Word alignments (jiwer)", ""]
    missing = set(missing)
    for uttid, steps in alignments.items():
        ref_row, hyp_row, eval_row = [], [], []
        for op, r, h in steps:
            r_txt = "*" * len(h or "") if r is None else r
            h_txt = "*" * len(r or "") if h is None else h
            if op != "C":
                r_txt, h_txt = r_txt.upper(), h_txt.upper()
            width = max(len(r_txt), len(h_txt), 1)
            ref_row.append(r_txt.ljust(width))
            hyp_row.append(h_txt.ljust(width))
            eval_row.append(("" if op == "C" else op).ljust(width))
        c, s, d, i = utterance_counts(steps)
        lines += [
            f"id: {uttid}" + ("  (no hypothesis)" if uttid in missing else ""),
            f"Scores: (#C #S #D #I) {c} {s} {d} {i}",
            "REF:  " + " ".join(ref_row),
            "HYP:  " + " ".join(hyp_row),
            "Eval: " + " ".join(eval_row),
            "",
        ]
    return lines


def _some(ids: Sequence[str]) -> str:
    return " ".join(ids[:10]) + (" ..." if len(ids) > 10 else "")


def score_dir(
    ref_text: Union[str, Path],
    hyp_text: Union[str, Path],
    out_dir: Union[str, Path],
    scorer: str = "auto",
    utt2spk: Optional[Union[str, Path]] = None,
    case_sensitive: bool = False,
) -> Dict[str, Any]:
    """Score one decoded test set and write ``result.txt`` and ``result.json``.

    With sclite, its reports and the ``trn`` files are kept as
    ``sclite.{wrd,char}.txt`` and ``{ref,hyp}.{wrd,char}.trn``.

    Args:
        ref_text: Reference Kaldi ``text`` (``data/<set>/text``).
        hyp_text: Hypothesis ``text`` from decoding.
        out_dir: Output directory (created).
        scorer: ``"auto"`` (sclite if installed, else jiwer), ``"sclite"``
            (required) or ``"jiwer"``.
        utt2spk: Speaker map for sclite's per-speaker tables; default
            ``utt2spk`` beside ``ref_text`` if it exists, else each utterance
            is its own speaker.
        case_sensitive: Compare tokens exactly (sclite ``-s``); default folds
            ASCII case like ESPnet's sclite call.

    Returns:
        The content of ``result.json``: ``wer`` and ``cer`` (percent),
        ``word`` and ``char`` counts (``ErrorCounts.to_dict``), ``n_utts``,
        ``scorer`` (``"sclite"``/``"jiwer"``), ``sclite`` (its path or None),
        ``missing_hyps``, ``extra_hyps``, ``ref``, ``hyp``.

    Raises:
        ValueError: Bad ``scorer``, duplicate ids, or an empty reference.
        FileNotFoundError: ``scorer="sclite"`` without sclite installed.
        RuntimeError: ``scorer="sclite"`` and sclite fails.
    """
    if scorer not in SCORERS:
        raise ValueError(f"scorer={scorer!r} is not allowed; use one of {SCORERS}")
    ref_text, hyp_text, out_dir = Path(ref_text), Path(hyp_text), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ref = read_transcripts(ref_text)
    hyp = read_transcripts(hyp_text)
    _check_references(ref, str(ref_text))
    missing = [u for u in ref if u not in hyp]
    extra = [u for u in hyp if u not in ref]
    if missing:
        logger.warning(f"{hyp_text}: no hypothesis for {len(missing)} of {len(ref)} "
                       f"utterances (scored as deletions): {_some(missing)}")
    if extra:
        logger.warning(f"{hyp_text}: {len(extra)} utterances have no reference in "
                       f"{ref_text} and are not scored: {_some(extra)}")
    logger.info(f"scoring: ref={ref_text} hyp={hyp_text} -> {out_dir}")
    if utt2spk is None and (ref_text.parent / "utt2spk").is_file():
        utt2spk = ref_text.parent / "utt2spk"
    spk_map = _read_utt2spk(Path(utt2spk)) if utt2spk is not None else None

    sclite_bin = sclite_mod.find_sclite() if scorer != "jiwer" else None
    if scorer == "sclite" and sclite_bin is None:
        raise FileNotFoundError(
            "sclite is required (--scorer sclite) but not found on PATH nor at "
            f"{', '.join(sclite_mod.SCLITE_FALLBACK_PATHS)}; install it with "
            "'apt-get install sctk'"
        )
    char_ref = {u: words_to_chars(w) for u, w in ref.items()}
    char_hyp = {u: words_to_chars(w) for u, w in hyp.items()}
    if sclite_bin is not None:
        try:
            word, report = sclite_mod.sclite_score(ref, hyp, out_dir, "wrd", spk_map,
                                                   sclite_bin, case_sensitive)
            char, _ = sclite_mod.sclite_score(char_ref, char_hyp, out_dir, "char",
                                              spk_map, sclite_bin, case_sensitive)
        except (RuntimeError, ValueError) as e:
            if scorer == "sclite":
                raise
            logger.warning(f"sclite failed, scoring with jiwer: {e}")
            sclite_bin = None
    if sclite_bin is not None:
        used = "sclite"
        details = [f"sclite word report ({out_dir / 'sclite.wrd.txt'}):", report]
    else:
        used = "jiwer"
        if scorer == "auto":
            logger.info("sclite not found; scoring with jiwer")
        alignments = jiwer_align(ref, hyp, case_sensitive)
        word = total_counts({u: utterance_counts(a) for u, a in alignments.items()})
        char = total_counts({u: utterance_counts(a) for u, a in
                             jiwer_align(char_ref, char_hyp, case_sensitive).items()})
        details = _alignment_lines(alignments, missing)

    result = {
        "ref": str(ref_text),
        "hyp": str(hyp_text),
        "scorer": used,
        "sclite": sclite_bin,
        "case_sensitive": case_sensitive,
        "n_utts": len(ref),
        "wer": word.error_rate,
        "cer": char.error_rate,
        "word": word.to_dict(),
        "char": char.to_dict(),
        "missing_hyps": missing,
        "extra_hyps": extra,
    }
    lines = [
        f"ref: {ref_text}",
        f"hyp: {hyp_text}",
        f"scorer: {used}" + (f" ({sclite_bin})" if sclite_bin else ""),
        f"utterances: {len(ref)}",
        f"missing hypotheses (scored as deletions): {len(missing)}"
        + (": " + " ".join(missing) if missing else ""),
        f"hypotheses without reference (not scored): {len(extra)}"
        + (": " + " ".join(extra) if extra else ""),
        "",
        *_summary_block("WER", "word", word),
        *_summary_block("CER", "char", char),
        *details,
    ]
    atomic.write_text(out_dir / "result.txt", "\n".join(lines) + "\n")
    atomic.write_json(out_dir / "result.json", result)
    logger.info(
        f"scored n_utts={len(ref)} wer={word.error_rate:.2f} cer={char.error_rate:.2f} "
        f"scorer={used} out={out_dir / 'result.json'}"
    )
    return result


def load_result(path: Union[str, Path]) -> Dict[str, Any]:
    """Read a ``result.json`` written by :func:`score_dir`.

    Args:
        path: The ``result.json`` file or the directory holding it.

    Returns:
        Its content.

    Raises:
        ValueError: The file is not valid JSON (named).
    """
    path = Path(path)
    if path.is_dir():
        path = path / "result.json"
    with path.open("r", encoding="utf-8") as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not a valid result.json ({e})") from None


# ----------------------------------------------------------------- RESULTS.md


def _snr_column(key: Union[str, float, int]) -> Union[float, str]:
    """Map a user key (-7.5, "-7.5", "clean") to its entry of SNR_COLUMNS."""
    if isinstance(key, str) and key.strip().lower() == "clean":
        return "clean"
    try:
        value = float(key)
    except (TypeError, ValueError):
        value = None
    for column in SNR_COLUMNS[:-1]:
        if value is not None and abs(value - column) < 1e-6:
            return column
    raise ValueError(
        f"SNR column {key!r} is not allowed; use one of "
        f"{', '.join(str(c) for c in SNR_COLUMNS)}"
    )


def _fmt_rate(value: Optional[float]) -> str:
    return MISSING if value is None else f"{value:.1f}"


def _fmt_count(n: Optional[int]) -> str:
    if n is None:
        return MISSING
    if n >= 1_000_000:
        return f"{n / 1e6:.1f} M"
    if n >= 1_000:
        return f"{n / 1e3:.1f} K"
    return str(n)


def _fmt_fraction(value: Optional[float], key: str, name: str) -> str:
    if value is None:
        return MISSING
    if not 0.0 <= value <= 1.0:
        raise ValueError(
            f"model '{name}': {key}={value} must be a fraction in [0, 1]"
        )
    return f"{100.0 * value:.1f} %"


def _rank_range(ranks: Sequence[int]) -> str:
    ranks = list(ranks)
    if not ranks:
        return MISSING
    lo, hi = min(ranks), max(ranks)
    mean = sum(ranks) / len(ranks)
    return str(lo) if lo == hi else f"{lo}–{hi} (mean {mean:.0f})"


def _fmt_ranks(ranks: Any) -> str:
    """Summarise ranks: None, a string, a list of ints, or {group: ints}."""
    if ranks is None:
        return MISSING
    if isinstance(ranks, str):
        return ranks
    if isinstance(ranks, Mapping):
        parts = []
        for group, value in ranks.items():
            text = _rank_range([value] if isinstance(value, int) else value)
            parts.append(f"{group}: {text}")
        return "; ".join(parts) if parts else MISSING
    return _rank_range(ranks)


def _table(
    header: Sequence[str], rows: Sequence[Sequence[str]], align: str
) -> List[str]:
    rule = {"l": ":---", "r": "---:", "c": ":---:"}
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(rule[a] for a in align) + "|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |")
    return lines


def format_snr_table(
    snr_rows: Sequence[Mapping[str, Any]],
    n_params: Optional[Mapping[str, int]] = None,
) -> List[str]:
    """WER (%) versus SNR in the layout of MSRS Table 3.

    Args:
        snr_rows: One dict per model/experiment: ``name`` (str) and ``wer``
            ({SNR: WER %} with SNR in -7.5, -2.5, 2.5, 7.5, 12.5 (numbers or
            strings) or ``"clean"``), optionally ``n_params`` (int).
        n_params: Parameter counts by row name, used when a row has none.

    Returns:
        Markdown table lines; missing cells are "–".
    """
    n_params = {} if n_params is None else n_params
    header = ["Model", "#Params"] + [
        "Clean" if c == "clean" else f"{c:g} dB" for c in SNR_COLUMNS
    ]
    rows = []
    for row in snr_rows:
        name = str(row["name"])
        cells: Dict[Union[float, str], float] = {}
        for key, value in dict(row.get("wer", {})).items():
            cells[_snr_column(key)] = value
        params = row.get("n_params", n_params.get(name))
        rows.append(
            [name, _fmt_count(params)] + [_fmt_rate(cells.get(c)) for c in SNR_COLUMNS]
        )
    return _table(header, rows, "lr" + "r" * len(SNR_COLUMNS))


def format_test_set_table(test_rows: Sequence[Mapping[str, Any]]) -> List[str]:
    """WER and CER per model and test set.

    Args:
        test_rows: Dicts with ``model`` and ``test_set`` and the fields of a
            ``result.json`` (``wer``, ``cer``; optional ``n_utts``, ``word``,
            ``char``, ``scorer``), e.g. ``{"model": m, "test_set": t,
            **load_result(d)}``.

    Returns:
        Markdown table lines.
    """
    header = ["Model", "Test set", "#Utts", "#Words", "WER (%)", "#Chars", "CER (%)",
              "Scorer"]
    rows = []
    for row in test_rows:
        word = row.get("word") or {}
        char = row.get("char") or {}
        rows.append([
            str(row.get("model", MISSING)),
            str(row.get("test_set", MISSING)),
            str(row.get("n_utts", MISSING)),
            str(word.get("n_ref", MISSING)),
            _fmt_rate(row.get("wer")),
            str(char.get("n_ref", MISSING)),
            _fmt_rate(row.get("cer")),
            str(row.get("scorer", MISSING)),
        ])
    return _table(header, rows, "llrrrrrl")


def format_model_table(model_rows: Sequence[Mapping[str, Any]]) -> List[str]:
    """Parameters, sparsity and ranks per model.

    Args:
        model_rows: Dicts with ``name`` and optionally ``n_params`` (int, all
            parameters), ``n_nonzero`` (int; default
            ``n_params·(1 − sparsity_all)``), ``sparsity_all`` and
            ``sparsity_prunable`` (fractions in [0, 1], zeros over all
            parameters / over prunable weights), ``ranks`` (str, list of ints,
            or {group: list of ints} for LR-SMS).

    Returns:
        Markdown table lines.

    Raises:
        ValueError: If a sparsity is outside [0, 1].
    """
    header = ["Model", "#Params", "#Non-zero", "Sparsity (all)",
              "Sparsity (prunable)", "Ranks"]
    rows = []
    for row in model_rows:
        name = str(row["name"])
        n = row.get("n_params")
        s_all = row.get("sparsity_all")
        nonzero = row.get("n_nonzero")
        if nonzero is None and n is not None:
            nonzero = round(n * (1.0 - (s_all or 0.0)))
        rows.append([
            name,
            _fmt_count(n),
            _fmt_count(nonzero),
            _fmt_fraction(s_all, "sparsity_all", name),
            _fmt_fraction(row.get("sparsity_prunable"), "sparsity_prunable", name),
            _fmt_ranks(row.get("ranks")),
        ])
    return _table(header, rows, "lrrrrl")


def make_results_md(
    path: Union[str, Path],
    env: Mapping[str, Any],
    snr_rows: Sequence[Mapping[str, Any]] = (),
    test_rows: Sequence[Mapping[str, Any]] = (),
    model_rows: Sequence[Mapping[str, Any]] = (),
    title: str = "RESULTS",
    broken: Sequence[Mapping[str, Any]] = (),
) -> str:
    """Write ``RESULTS.md``.

    Args:
        path: Output file.
        env: Environment facts given by the caller: ``git_sha``, ``espnet``,
            ``torch`` (versions), optionally ``date`` (default: now, UTC) and
            any further ``key: value`` (e.g. ``host``, ``python``), all printed
            on one line.
        snr_rows: See :func:`format_snr_table`.
        test_rows: See :func:`format_test_set_table`.
        model_rows: See :func:`format_model_table`; their ``n_params`` also
            fill the SNR table's #Params column.
        title: First heading.
        broken: Experiments left out because their files could not be read:
            dicts with ``name`` and ``error`` (listed in a section of their own).

    Returns:
        The Markdown text written.
    """
    env = dict(env)
    date = env.pop("date", None) or datetime.datetime.now(
        datetime.timezone.utc
    ).strftime("%Y-%m-%d %H:%M:%S UTC")
    parts = [f"date: {date}"]
    for key in ("git_sha", "espnet", "torch"):
        parts.append(f"{key}: {env.pop(key, MISSING)}")
    parts += [f"{k}: {v}" for k, v in env.items()]
    n_params = {
        str(r["name"]): r["n_params"]
        for r in model_rows
        if r.get("n_params") is not None
    }
    lines = [f"# {title}", "", "## Environment", "", "- " + ", ".join(parts), ""]
    lines += [
        "## WER (%) versus SNR (babble noise; MSRS Table 3 layout)",
        "",
        *format_snr_table(snr_rows, n_params),
        "",
        "## WER / CER per test set",
        "",
        *format_test_set_table(test_rows),
        "",
        "## Models",
        "",
        "Sparsity (all) is the share of zero values over all parameters (the "
        "MSRS paper's convention); sparsity (prunable) over masked weights only.",
        "",
        *format_model_table(model_rows),
        "",
    ]
    if broken:
        lines += [
            "## Broken experiments (left out)",
            "",
            *_table(["Experiment", "Error"],
                    [[str(b["name"]), str(b["error"])] for b in broken], "ll"),
            "",
        ]
    text = "\n".join(lines)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(path, text)
    logger.info(f"wrote {path}")
    return text
