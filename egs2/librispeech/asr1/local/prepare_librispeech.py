#!/usr/bin/env python3
"""LibriSpeech data preparation (stage 1): Kaldi-style data directories.

Reads the LibriSpeech layout (``$LIBRISPEECH`` in ``db.sh``; the folder that
holds the unpacked sets)::

    $LIBRISPEECH/<set>/<spk>/<chapter>/<spk>-<chapter>-<nnnn>.flac
    $LIBRISPEECH/<set>/<spk>/<chapter>/<spk>-<chapter>.trans.txt
                                           "<spk>-<chapter>-<nnnn> TRANSCRIPT"

and writes (ESPnet's LibriSpeech naming)::

    data/train_960   train-clean-100 + train-clean-360 + train-other-500
                     (``--train_sets``/``--train_name`` to change)
    data/dev         dev-clean + dev-other (the validation set)
    data/dev_clean, data/dev_other, data/test_clean, data/test_other

each with ``wav.scp`` (``<uid> <flac path>``; stage 2 converts to 16 kHz
wav), ``text``, ``utt2spk`` and ``spk2utt``. Utterance ids are the file
names ``<spk>-<chapter>-<nnnn>``; the speaker of an utterance is
``<spk>-<chapter>`` (as in Kaldi's and ESPnet's LibriSpeech recipes, so
that per-speaker processing never mixes recording sessions). A flac
without a transcript line, or a transcript line without a flac, is
reported in ``<report_dir>/skipped.txt`` and left out.
"""

import argparse
import logging
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))

import prep_utils as pu  # noqa: E402

logger = logging.getLogger("prepare_librispeech")

TRAIN_960 = ("train-clean-100", "train-clean-360", "train-other-500")
EVAL_SETS = ("dev-clean", "dev-other", "test-clean", "test-other")


def read_set(
    root: Path, name: str
) -> Tuple[List[pu.Utterance], List[Tuple[str, str]]]:
    """Utterances of one LibriSpeech set, and (uid, reason) problems."""
    utts: List[pu.Utterance] = []
    problems: List[Tuple[str, str]] = []
    for chapter_dir in sorted((root / name).glob("*/*")):
        if not chapter_dir.is_dir():
            continue
        spk, chapter = chapter_dir.parent.name, chapter_dir.name
        trans = chapter_dir / f"{spk}-{chapter}.trans.txt"
        texts: Dict[str, str] = {}
        if trans.is_file():
            with open(trans, encoding="utf-8") as f:
                for lineno, line in enumerate(f, 1):
                    parts = line.strip().split(maxsplit=1)
                    if not parts:
                        continue
                    if len(parts) == 1:
                        reason = f"{trans}:{lineno}: empty transcript"
                        problems.append((parts[0], reason))
                        continue
                    texts[parts[0]] = " ".join(parts[1].upper().split())
        flacs = {p.stem: p for p in sorted(chapter_dir.glob("*.flac"))}
        for uid in sorted(set(texts) - set(flacs)):
            problems.append((uid, f"{trans}: transcript without {uid}.flac"))
        for uid, flac in flacs.items():
            if uid not in texts:
                problems.append((uid, f"{flac}: no line in {trans.name}"))
                continue
            utts.append(
                pu.Utterance(
                    uid=uid,
                    spk=f"{spk}-{chapter}",
                    text=texts[uid],
                    wav=str(flac.resolve()),
                )
            )
    return utts, problems


def get_parser() -> argparse.ArgumentParser:
    """Command-line parser."""
    parser = argparse.ArgumentParser(
        description="LibriSpeech -> Kaldi-style data directories",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--librispeech", default=None, help="LibriSpeech root (db.sh: LIBRISPEECH)"
    )
    parser.add_argument("--train_sets", nargs="+", default=list(TRAIN_960))
    parser.add_argument("--train_name", default="train_960")
    parser.add_argument("--data_dir", default="data")
    parser.add_argument("--report_dir", default="data/local/librispeech")
    parser.add_argument("--log_level", default="INFO")
    return parser


def main(cmd: Optional[Sequence[str]] = None) -> int:
    """Run the preparation; returns the exit status."""
    args = get_parser().parse_args(cmd)
    pu.setup_logging(args.log_level)
    needed = list(dict.fromkeys(list(args.train_sets) + list(EVAL_SETS)))
    try:
        root = pu.check_corpus_dir(
            args.librispeech,
            "LIBRISPEECH",
            expected=needed,
            what="the LibriSpeech folder holding " + ", ".join(needed),
        )
    except pu.CorpusPathError as e:
        logger.error("%s", e)
        return 2
    problems: List[Tuple[str, str]] = []
    per_set: Dict[str, List[pu.Utterance]] = {}
    for name in needed:
        utts, probs = read_set(root, name)
        problems += probs
        if not utts:
            logger.error(
                "No <spk>/<chapter>/*.flac with transcripts under %s: fix "
                "LIBRISPEECH in db.sh",
                root / name,
            )
            return 2
        per_set[name] = utts
        logger.info("set=%s utterances=%d", name, len(utts))
    out = {args.train_name: [u for s in args.train_sets for u in per_set[s]]}
    out["dev"] = per_set["dev-clean"] + per_set["dev-other"]
    for name in EVAL_SETS:
        out[name.replace("-", "_")] = per_set[name]
    for name, utts in out.items():
        n = pu.write_data_dir(Path(args.data_dir) / name, utts)
        logger.info("Wrote %s utterances=%d", Path(args.data_dir) / name, n)
    pu.write_report(Path(args.report_dir) / "skipped.txt", problems)
    if problems:
        logger.warning(
            "%d utterance(s) skipped, reasons in %s (e.g. %s: %s)",
            len(problems),
            Path(args.report_dir) / "skipped.txt",
            *sorted(problems)[0],
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
