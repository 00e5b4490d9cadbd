"""Stage-12 outputs: per-test-set score files and the recipe's ``RESULTS.md``.

:func:`score_dir` scores one decoded test set (WER and CER, see
:mod:`espnet_msrs.scoring.wer`) with sclite when it is installed and the
project's own scorer otherwise, and writes ``result.txt`` (sclite-like
summary, so ``grep -e Avg -e SPKR`` works as on ESPnet's files) and
``result.json``. :func:`make_results_md` writes ``RESULTS.md`` with the
environment, WER as a function of SNR in the layout of MSRS Table 3
(Fernandez-Lopez et al., Interspeech 2024: rows = models, columns = −7.5,
−2.5, 2.5, 7.5, 12.5 dB and clean), WER/CER per test set, and parameters,
sparsity and ranks per model.
"""

import datetime
import json
import logging
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from espnet_msrs.scoring import sclite as sclite_mod
from espnet_msrs.utils import atomic
from espnet_msrs.scoring.wer import (
    CorpusScore,
    ErrorCounts,
    read_text,
    score_texts,
    words_to_chars,
)

logger = logging.getLogger(__name__)

#: SNR columns of MSRS Table 3 (dB), then the clean condition.
SNR_COLUMNS = (-7.5, -2.5, 2.5, 7.5, 12.5, "clean")
#: Placeholder of a missing table cell.
MISSING = "–"


def _read_utt2spk(path: Path) -> Dict[str, str]:
    utt2spk = {}
    with path.open("r", encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2:
                raise ValueError(
                    f"{path}:{lineno}: expected 'uttid speaker', got {line.strip()!r}"
                )
            utt2spk[fields[0]] = fields[1]
    return utt2spk


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


def _alignment_lines(score: CorpusScore) -> List[str]:
    lines = ["Word alignments (python scorer; errors upper-cased as sclite does)", ""]
    for utt in score.utterances:
        ref_row, hyp_row, eval_row = [], [], []
        for op, r, h in utt.alignment:
            r_txt = "*" * len(h or "") if r is None else r
            h_txt = "*" * len(r or "") if h is None else h
            if op != "C":
                r_txt, h_txt = r_txt.upper(), h_txt.upper()
            width = max(len(r_txt), len(h_txt), 1)
            ref_row.append(r_txt.ljust(width))
            hyp_row.append(h_txt.ljust(width))
            eval_row.append(("" if op == "C" else op).ljust(width))
        w = utt.word
        lines += [
            f"id: {utt.uttid}" + ("  (no hypothesis)" if utt.missing_hyp else ""),
            f"Scores: (#C #S #D #I) {w.correct} {w.substitutions} {w.deletions} "
            f"{w.insertions}",
            "REF:  " + " ".join(ref_row),
            "HYP:  " + " ".join(hyp_row),
            "Eval: " + " ".join(eval_row),
            "",
        ]
    return lines


def score_dir(
    ref_text: Union[str, Path],
    hyp_text: Union[str, Path],
    out_dir: Union[str, Path],
    use_sclite: Union[str, bool] = "auto",
    utt2spk: Optional[Union[str, Path]] = None,
    case_sensitive: bool = False,
) -> Dict[str, Any]:
    """Score one decoded test set and write ``result.txt`` and ``result.json``.

    The python scorer always runs (it gives the per-utterance alignments of
    ``result.txt``). With sclite, the reported numbers are sclite's; the two
    are compared and a disagreement is logged and recorded. sclite's own
    reports and the ``trn`` files are kept as ``sclite.{wrd,char}.txt`` and
    ``{ref,hyp}.{wrd,char}.trn``.

    Args:
        ref_text: Reference Kaldi ``text`` (``data/<set>/text``).
        hyp_text: Hypothesis ``text`` from decoding.
        out_dir: Output directory (created).
        use_sclite: ``"auto"`` (sclite if found, else python), True (sclite
            required) or False (python scorer).
        utt2spk: Speaker map for sclite's per-speaker tables; default
            ``utt2spk`` beside ``ref_text`` if it exists, else each utterance
            is its own speaker.
        case_sensitive: Compare tokens exactly (sclite ``-s``); default folds
            ASCII case like ESPnet's sclite call.

    Returns:
        The content of ``result.json``: ``wer`` and ``cer`` (percent),
        ``word`` and ``char`` counts (see ``ErrorCounts.to_dict``),
        ``n_utts``, ``scorer`` (``"sclite"``/``"python"``), ``sclite`` (path
        or None), ``python_agrees`` (bool, None without sclite),
        ``missing_hyps``, ``extra_hyps``, ``ref``, ``hyp``.

    Raises:
        ValueError: Bad ``use_sclite``, duplicate ids, or an empty reference.
        FileNotFoundError: ``use_sclite=True`` without sclite installed.
        RuntimeError: ``use_sclite=True`` and sclite fails.
    """
    if not (isinstance(use_sclite, bool) or use_sclite == "auto"):
        raise ValueError(
            f"use_sclite={use_sclite!r} is not allowed; use 'auto', True or False"
        )
    ref_text, hyp_text, out_dir = Path(ref_text), Path(hyp_text), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ref = read_text(ref_text)
    hyp = read_text(hyp_text)
    logger.info(f"scoring: ref={ref_text} hyp={hyp_text} -> {out_dir}")
    score = score_texts(
        ref, hyp, case_sensitive, ref_name=str(ref_text), hyp_name=str(hyp_text)
    )

    spk_map: Optional[Dict[str, str]] = None
    if utt2spk is None and (ref_text.parent / "utt2spk").is_file():
        utt2spk = ref_text.parent / "utt2spk"
    if utt2spk is not None:
        spk_map = _read_utt2spk(Path(utt2spk))

    word, char = score.word, score.char
    scorer, sclite_bin, agrees = "python", None, None
    if use_sclite is not False:
        sclite_bin = sclite_mod.find_sclite()
        if sclite_bin is None:
            if use_sclite is True:
                raise FileNotFoundError(
                    "sclite is required (use_sclite=True) but not found on PATH "
                    f"nor at {', '.join(sclite_mod.SCLITE_FALLBACK_PATHS)}; "
                    "install it with 'apt-get install sctk'"
                )
            logger.info("sclite not found; using the python scorer")
        else:
            try:
                word_s, _ = sclite_mod.sclite_score(
                    ref, hyp, out_dir, "wrd", spk_map, sclite_bin, case_sensitive
                )
                char_s, _ = sclite_mod.sclite_score(
                    {u: words_to_chars(w) for u, w in ref.items()},
                    {u: words_to_chars(w) for u, w in hyp.items()},
                    out_dir,
                    "char",
                    spk_map,
                    sclite_bin,
                    case_sensitive,
                )
            except (RuntimeError, ValueError) as e:
                if use_sclite is True:
                    raise
                logger.warning(f"sclite failed, using the python scorer: {e}")
                sclite_bin = None
            else:
                scorer = "sclite"
                agrees = word_s == word and char_s == char
                if not agrees:
                    logger.warning(
                        f"python scorer disagrees with sclite on {hyp_text}: "
                        f"sclite word={word_s} char={char_s}; "
                        f"python word={word} char={char}"
                    )
                word, char = word_s, char_s

    result = {
        "ref": str(ref_text),
        "hyp": str(hyp_text),
        "scorer": scorer,
        "sclite": sclite_bin,
        "python_agrees": agrees,
        "case_sensitive": case_sensitive,
        "n_utts": score.n_utts,
        "wer": word.error_rate,
        "cer": char.error_rate,
        "word": word.to_dict(),
        "char": char.to_dict(),
        "missing_hyps": list(score.missing_hyps),
        "extra_hyps": list(score.extra_hyps),
    }
    lines = [
        f"ref: {ref_text}",
        f"hyp: {hyp_text}",
        f"scorer: {scorer}" + (f" ({sclite_bin})" if sclite_bin else "")
        + ("" if agrees is None else f"; python scorer agrees: {agrees}"),
        f"utterances: {score.n_utts}",
        f"missing hypotheses (scored as deletions): {len(score.missing_hyps)}"
        + (": " + " ".join(score.missing_hyps) if score.missing_hyps else ""),
        f"hypotheses without reference (not scored): {len(score.extra_hyps)}"
        + (": " + " ".join(score.extra_hyps) if score.extra_hyps else ""),
        "",
    ]
    lines += _summary_block("WER", "word", word)
    lines += _summary_block("CER", "char", char)
    lines += _alignment_lines(score)
    (out_dir / "result.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with (out_dir / "result.json").open("w", encoding="utf-8") as f:
        json.dump(result, f, indent=2, ensure_ascii=False)
        f.write("\n")
    logger.info(
        f"scored n_utts={score.n_utts} wer={word.error_rate:.2f} "
        f"cer={char.error_rate:.2f} scorer={scorer} out={out_dir / 'result.json'}"
    )
    return result


def load_result(path: Union[str, Path]) -> Dict[str, Any]:
    """Read a ``result.json`` written by :func:`score_dir`.

    Args:
        path: The ``result.json`` file or the directory holding it.

    Returns:
        Its content.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "result.json"
    with path.open("r", encoding="utf-8") as f:
        return json.load(f)


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
