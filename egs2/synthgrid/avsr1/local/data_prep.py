#!/usr/bin/env python3
"""Kaldi-style data directories from a synthetic GRID corpus (stage 1).

Reads the corpus' ``manifest.tsv`` (written by
``python -m espnet_msrs.bin.make_synthgrid``) and writes, for each of
``train``, ``valid`` and ``test``::

    data/<set>/wav.scp       <utt_id> <abs path of the 22.05 kHz wav>
    data/<set>/video.scp     <utt_id> <abs path of the face mp4>
    data/<set>/landmark.scp  <utt_id> <abs path of the (T, 68, 2) landmarks>
    data/<set>/text          <utt_id> BIN BLUE AT F TWO NOW
    data/<set>/utt2spk, data/<set>/spk2utt

Splits (``--split``):

* ``utterance`` (default; GRID's usual "overlapped speakers" protocol): every
  speaker appears in every set; each speaker's utterances are shuffled with
  ``--seed`` and the first ``--num_test`` go to test, the next ``--num_valid``
  to valid, the rest to train. Sentences are distinct within a speaker.
* ``speaker`` (unseen speakers): the last ``--num_test_speakers`` speakers
  form the test set, the ones before them (``--num_valid_speakers``) the
  valid set, the others train.

Utterance ids start with the speaker id (``s01_bbaf2n``), so sorting by
utterance id also sorts by speaker, as Kaldi tools expect. Files are only
rewritten when their content changes
(:func:`espnet_msrs.utils.data_dir.write_data_dir`).
"""

import csv
import logging
import random
import sys
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from espnet_msrs.utils.data_dir import Utterance, write_data_dir
from espnet_msrs.utils.cli import parse_tool_args, tool_parser

logger = logging.getLogger("data_prep")


def read_manifest(path: Path) -> List[Dict[str, str]]:
    """Rows of ``manifest.tsv`` (see ``espnet_msrs.synth.grid_corpus``)."""
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    need = {"utt_id", "speaker", "wav", "video", "landmarks", "text"}
    if not rows or not need <= set(rows[0]):
        raise ValueError(f"{path}: expected a manifest with columns {sorted(need)}")
    return rows


def split_rows(
    rows: Sequence[Dict[str, str]],
    split: str,
    num_valid: int,
    num_test: int,
    num_valid_speakers: int,
    num_test_speakers: int,
    seed: int,
) -> Dict[str, List[Dict[str, str]]]:
    """Assign each row to train / valid / test (see the module docstring)."""
    by_spk: Dict[str, List[Dict[str, str]]] = defaultdict(list)
    for row in rows:
        by_spk[row["speaker"]].append(row)
    speakers = sorted(by_spk)
    sets: Dict[str, List[Dict[str, str]]] = {"train": [], "valid": [], "test": []}
    if split == "utterance":
        for spk in speakers:
            utts = sorted(by_spk[spk], key=lambda r: r["utt_id"])
            random.Random(f"{seed}-{spk}").shuffle(utts)
            if len(utts) <= num_valid + num_test:
                raise ValueError(
                    f"speaker {spk} has {len(utts)} utterances; need more than "
                    f"num_valid + num_test = {num_valid + num_test}"
                )
            sets["test"] += utts[:num_test]
            sets["valid"] += utts[num_test : num_test + num_valid]
            sets["train"] += utts[num_test + num_valid :]
    elif split == "speaker":
        if len(speakers) <= num_valid_speakers + num_test_speakers:
            raise ValueError(
                f"{len(speakers)} speakers; need more than num_valid_speakers + "
                f"num_test_speakers = {num_valid_speakers + num_test_speakers}"
            )
        n_train = len(speakers) - num_valid_speakers - num_test_speakers
        for i, spk in enumerate(speakers):
            name = "train" if i < n_train else (
                "valid" if i < n_train + num_valid_speakers else "test"
            )
            sets[name] += by_spk[spk]
    else:
        raise ValueError(f"--split={split!r}; allowed: utterance, speaker")
    return sets


def utterances(rows: List[Dict[str, str]], corpus: Path) -> List[Utterance]:
    """Manifest rows as data-directory records (absolute media paths)."""
    return [
        Utterance(
            uid=r["utt_id"],
            spk=r["speaker"],
            text=r["text"],
            wav=str((corpus / r["wav"]).resolve()),
            video=str((corpus / r["video"]).resolve()),
            landmark=str((corpus / r["landmarks"]).resolve()),
        )
        for r in rows
    ]


def get_parser():
    """Command-line parser."""
    parser = tool_parser(__doc__)
    parser.add_argument("--corpus", required=True, help="Corpus dir with manifest.tsv")
    parser.add_argument("--data_dir", default="data", help="Output root")
    parser.add_argument("--split", default="utterance", choices=("utterance", "speaker"))
    parser.add_argument("--num_valid", type=int, default=4, help="Per speaker")
    parser.add_argument("--num_test", type=int, default=6, help="Per speaker")
    parser.add_argument("--num_valid_speakers", type=int, default=1)
    parser.add_argument("--num_test_speakers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0, help="Shuffling seed")
    return parser


def main(cmd: Optional[List[str]] = None) -> None:
    """Write data/{train,valid,test}."""
    args = parse_tool_args(get_parser(), cmd)
    corpus = Path(args.corpus)
    manifest = corpus / "manifest.tsv"
    if not manifest.is_file():
        raise ValueError(f"{manifest} not found: generate the corpus first")
    sets = split_rows(
        read_manifest(manifest), args.split, args.num_valid, args.num_test,
        args.num_valid_speakers, args.num_test_speakers, args.seed,
    )
    for name, rows in sets.items():
        n = write_data_dir(Path(args.data_dir) / name, utterances(rows, corpus))
        logger.info("data dir: %s utterances=%d speakers=%d", Path(args.data_dir) / name, n,
                    len({r["speaker"] for r in rows}))


if __name__ == "__main__":
    main(sys.argv[1:])
