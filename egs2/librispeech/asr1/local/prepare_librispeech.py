#!/usr/bin/env python3
"""LibriSpeech data preparation (stage 1): Kaldi-style data directories.

Reads the LibriSpeech layout (``$LIBRISPEECH`` in ``db.sh``; the folder that
holds the unpacked sets)::

    $LIBRISPEECH/<set>/<spk>/<chapter>/<spk>-<chapter>-<nnnn>.flac
    $LIBRISPEECH/<set>/<spk>/<chapter>/<spk>-<chapter>.trans.txt
                                           "<spk>-<chapter>-<nnnn> TRANSCRIPT"

and writes (ESPnet's LibriSpeech naming)::

    data/<train_name>   --train_subsets (default train-clean-100 +
                        train-clean-360 + train-other-500 = train_960)
    data/dev            --valid_subsets (default dev-clean + dev-other)
    data/<subset>       each of --test_subsets with "-" written "_"
                        (default test_clean, test_other, dev_clean, dev_other)

each with ``wav.scp`` (``<uid> <flac path>``; stage 2 converts to 16 kHz
wav), ``text``, ``utt2spk`` and ``spk2utt``. Only the subsets asked for must
exist; a missing one is an error naming it, the option that asked for it and
``LIBRISPEECH``. Utterance ids are the file names ``<spk>-<chapter>-<nnnn>``;
the speaker of an utterance is ``<spk>-<chapter>`` (as in Kaldi's and
ESPnet's LibriSpeech recipes, so that per-speaker processing never mixes
recording sessions). A flac without a transcript line, or a transcript line
without a flac, is reported in ``<report_dir>/skipped.txt`` (and in the
``dropped.txt`` of each data directory it belongs to) and left out.
Transcripts go through the recipes' one normaliser.
"""

import logging
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from espnet_msrs.data_prep.corpus import CorpusPathError, check_corpus_dir
from espnet_msrs.data_prep.text import normalize_text
from espnet_msrs.utils.data_dir import Utterance, iter_lines, write_data_dir, write_report
from espnet_msrs.utils.cli import LOG_LEVELS, parse_tool_args, tool_parser

logger = logging.getLogger("prepare_librispeech")

TRAIN_960 = ("train-clean-100", "train-clean-360", "train-other-500")
VALID = ("dev-clean", "dev-other")
TESTS = ("test-clean", "test-other", "dev-clean", "dev-other")


def read_set(root: Path, name: str) -> Tuple[List[Utterance], List[Tuple[str, str]]]:
    """Utterances of one LibriSpeech set, and (uid, reason) problems."""
    utts: List[Utterance] = []
    problems: List[Tuple[str, str]] = []
    for chapter_dir in sorted((root / name).glob("*/*")):
        if not chapter_dir.is_dir():
            continue
        spk, chapter = chapter_dir.parent.name, chapter_dir.name
        trans = chapter_dir / f"{spk}-{chapter}.trans.txt"
        texts: Dict[str, str] = {}
        if trans.is_file():
            for lineno, line in iter_lines(trans):
                parts = line.strip().split(maxsplit=1)
                if not parts:
                    continue
                if len(parts) == 1 or not normalize_text(parts[1]):
                    problems.append((parts[0], f"{trans}:{lineno}: empty transcript"))
                    continue
                texts[parts[0]] = normalize_text(parts[1])
        flacs = {p.stem: p for p in sorted(chapter_dir.glob("*.flac"))}
        for uid in sorted(set(texts) - set(flacs)):
            problems.append((uid, f"{trans}: transcript without {uid}.flac"))
        for uid, flac in flacs.items():
            if uid not in texts:
                problems.append((uid, f"{flac}: no line in {trans.name}"))
                continue
            utts.append(
                Utterance(
                    uid=uid,
                    spk=f"{spk}-{chapter}",
                    text=texts[uid],
                    wav=str(flac.resolve()),
                )
            )
    return utts, problems


def get_parser():
    """Command-line parser."""
    parser = tool_parser(__doc__)
    parser.add_argument(
        "--librispeech", default=None, help="LibriSpeech root (db.sh: LIBRISPEECH)"
    )
    parser.add_argument("--train_subsets", nargs="+", default=list(TRAIN_960))
    parser.add_argument("--train_name", default="train_960")
    parser.add_argument("--valid_subsets", nargs="+", default=list(VALID),
                        help="Joined into data/dev")
    parser.add_argument("--test_subsets", nargs="+", default=list(TESTS),
                        help="Each written to data/<subset with _>")
    parser.add_argument("--data_dir", default="data")
    parser.add_argument("--report_dir", default="data/local/librispeech")
    parser.add_argument("--log_level", default="INFO", choices=LOG_LEVELS)
    return parser


def main(cmd: Optional[Sequence[str]] = None) -> int:
    """Run the preparation; returns the exit status."""
    args = parse_tool_args(get_parser(), cmd)
    asked = {"--train_subsets": args.train_subsets, "--valid_subsets": args.valid_subsets,
             "--test_subsets": args.test_subsets}
    try:
        root = check_corpus_dir(args.librispeech, "LIBRISPEECH", what="the LibriSpeech folder")
        for option, subsets in asked.items():
            for subset in subsets:
                if not (root / subset).is_dir():
                    others = " ".join(s for s in subsets if s != subset)
                    raise CorpusPathError(
                        f"LIBRISPEECH={args.librispeech} lacks {subset} (asked for by "
                        f"{option} {' '.join(subsets)}): unpack it there, fix LIBRISPEECH "
                        f"in db.sh, or leave it out: ./run.sh {option} \"{others}\""
                    )
    except CorpusPathError as e:
        logger.error("%s", e)
        return 2
    needed = list(dict.fromkeys(s for subsets in asked.values() for s in subsets))
    problems: Dict[str, List[Tuple[str, str]]] = {}
    per_set: Dict[str, List[Utterance]] = {}
    for name in needed:
        per_set[name], problems[name] = read_set(root, name)
        if not per_set[name]:
            logger.error(
                "No <spk>/<chapter>/*.flac with transcripts under %s: fix LIBRISPEECH in "
                "db.sh", root / name,
            )
            return 2
        logger.info("set=%s utterances=%d", name, len(per_set[name]))
    out = {
        args.train_name: args.train_subsets,
        "dev": args.valid_subsets,
        **{name.replace("-", "_"): [name] for name in args.test_subsets},
    }
    for name, subsets in out.items():
        n = write_data_dir(Path(args.data_dir) / name, [u for s in subsets for u in per_set[s]])
        write_report(Path(args.data_dir) / name / "dropped.txt",
                     [p for s in subsets for p in problems[s]])
        logger.info("Wrote %s utterances=%d", Path(args.data_dir) / name, n)
    skipped = [p for name in needed for p in problems[name]]
    write_report(Path(args.report_dir) / "skipped.txt", skipped)
    if skipped:
        logger.warning(
            "%d utterance(s) skipped, reasons in %s (e.g. %s: %s)",
            len(skipped),
            Path(args.report_dir) / "skipped.txt",
            *sorted(skipped)[0],
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
