#!/usr/bin/env python3
"""Measure how jiwer's counts differ from sclite's (issue 15 item 6).

sclite aligns with word costs correct 0, insertion 3, deletion 3,
substitution 4 (SCTK ``word.c:wwd_WORD``); jiwer uses unit-cost Levenshtein.
Unit costs minimise S+D+I, so jiwer's error total is never above sclite's and
can be below it; the S/D/I split can differ even when the totals agree.

Hypotheses are made from references by random word edits at a given rate
(substitution : deletion : insertion = 2 : 1 : 1, substitutes and inserts
drawn from the same vocabulary, so near-misses and shifted words occur), as
unrelated random word strings over 6 words (a model that has learnt
nothing), or read from real ``--ref``/``--hyp`` Kaldi text pairs. Prints one JSON line per
condition: utterances and words, the share of utterances whose error total
differs, the share whose S/D/I split differs, and both WERs.

    python tools/measure_scorers.py --rates 0.05 0.15 0.3 0.6 --utts 2000
    python tools/measure_scorers.py --ref data/test/text --hyp exp/x/decode/test/text
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Dict, List

import numpy as np

from espnet_msrs.scoring.jiwer_scorer import jiwer_utterance_counts
from espnet_msrs.scoring.sclite import find_sclite, sclite_utterance_counts

VOCAB = ("bin blue green red white place lay set at by in with a b c d e f g h i j k l m "
         "n o p q r s t u v x y z zero one two three four five six seven eight nine "
         "again now please soon").split()


def simulate(rng: np.random.Generator, n_utts: int, rate: float) -> Dict[str, tuple]:
    """Hypotheses with random edits at ``rate``; ``rate`` None: unrelated
    random hypotheses from a 6-word vocabulary (a failing model)."""
    pairs = {}
    for i in range(n_utts):
        if rate is None:
            ref = list(rng.choice(VOCAB[:6], size=int(rng.integers(4, 12))))
            hyp = list(rng.choice(VOCAB[:6], size=int(rng.integers(4, 12))))
            pairs[f"spk{i % 7}-utt{i:05d}"] = (ref, [str(w) for w in hyp])
            continue
        ref = list(rng.choice(VOCAB, size=int(rng.integers(4, 12))))
        hyp: List[str] = []
        for word in ref:
            r = rng.random()
            if r < rate / 2:
                hyp.append(str(rng.choice(VOCAB)))
            elif r < 3 * rate / 4:
                continue
            elif r < rate:
                hyp += [word, str(rng.choice(VOCAB))]
            else:
                hyp.append(word)
        pairs[f"spk{i % 7}-utt{i:05d}"] = (ref, hyp)
    return pairs


def compare(pairs: Dict[str, tuple], sclite: str, label: str) -> Dict:
    ref = {u: r for u, (r, _) in pairs.items()}
    hyp = {u: h for u, (_, h) in pairs.items()}
    with tempfile.TemporaryDirectory() as tmp:
        s = sclite_utterance_counts(ref, hyp, Path(tmp), sclite)
    j = jiwer_utterance_counts(ref, hyp)
    n_words = sum(len(r) for r in ref.values())
    total = lambda c: c[1] + c[2] + c[3]  # noqa: E731  (C S D I)
    return {
        "condition": label,
        "utterances": len(pairs),
        "words": n_words,
        "total_differs_pct": round(100 * np.mean([total(s[u]) != total(j[u]) for u in ref]), 3),
        "split_differs_pct": round(100 * np.mean([s[u][1:] != j[u][1:] for u in ref]), 3),
        "wer_sclite": round(100 * sum(total(c) for c in s.values()) / n_words, 3),
        "wer_jiwer": round(100 * sum(total(c) for c in j.values()) / n_words, 3),
        "jiwer_total_above_sclite": int(sum(total(j[u]) > total(s[u]) for u in ref)),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=float, nargs="*", default=[0.05, 0.15, 0.3, 0.6])
    parser.add_argument("--utts", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ref", nargs="*", default=[], help="Reference text files")
    parser.add_argument("--hyp", nargs="*", default=[], help="Hypothesis text files")
    args = parser.parse_args(argv)
    sclite = find_sclite()
    if sclite is None:
        print("sclite is not installed (apt-get install sctk)", file=sys.stderr)
        return 1
    rng = np.random.default_rng(args.seed)
    for rate in args.rates:
        print(json.dumps(compare(simulate(rng, args.utts, rate), sclite, f"random edits {rate}")))
    print(json.dumps(compare(simulate(rng, args.utts, None), sclite, "unrelated hypotheses")))
    from espnet_msrs.utils.data_dir import read_kv

    for ref_file, hyp_file in zip(args.ref, args.hyp):
        ref = {u: t.split() for u, t in read_kv(ref_file, allow_empty_value=True).items()}
        hyp = {u: t.split() for u, t in read_kv(hyp_file, allow_empty_value=True).items()}
        pairs = {u: (ref[u], hyp.get(u, [])) for u in ref if ref[u]}
        print(json.dumps(compare(pairs, sclite, f"{hyp_file}")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
