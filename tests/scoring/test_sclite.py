"""Tests of the sclite wrapper, and of how jiwer's counts compare with sclite's."""

import os
import random
import stat

import pytest

from espnet_msrs.scoring import sclite as sclite_mod
from espnet_msrs.scoring.results import score_dir
from espnet_msrs.scoring.sclite import (
    find_sclite,
    parse_sclite_report,
    parse_sclite_utterances,
    sclite_utterance_counts,
    trn_id,
    write_trn_pair,
)
from espnet_msrs.scoring.jiwer_scorer import jiwer_utterance_counts, total_counts
from espnet_msrs.scoring.results import words_to_chars

# Excerpt of `sclite -r ref.trn trn -h hyp.trn trn -i rm -o all stdout` (SCTK 2.4.10).
REPORT = """
       | SPKR   | # Snt # Wrd | Corr    Sub    Del    Ins    Err  S.Err |
       |--------+-------------+-----------------------------------------|
       | spk1   |    1      4 | 75.0   25.0    0.0   25.0   50.0  100.0 |
       |================================================================|
       | Sum/Avg|    3      9 | 55.6   11.1   33.3   11.1   55.6  100.0 |
       |================================================================|
        | SPKR | # Snt # Wrd | Corr    Sub    Del    Ins    Err  S.Err |
        | spk2 |    2      5 |    2      0      3      0      3      2 |
        |==============================================================|
        | Sum  |    3      9 |    5      1      3      1      5      3 |
        |==============================================================|
        | Mean |  1.5    4.5 |  2.5    0.5    1.5    0.5    2.5    1.5 |
id: (spk1-utt1)
Scores: (#C #S #D #I) 3 1 0 1
REF:  a B c d *
id: (spk2-utt3)
Scores: (#C #S #D #I) 0 0 2 0
"""


def test_parse_report():
    c = parse_sclite_report(REPORT)
    assert (c.n_sent, c.n_ref, c.correct, c.substitutions) == (3, 9, 5, 1)
    assert (c.deletions, c.insertions, c.errors, c.n_sent_err) == (3, 1, 5, 3)
    assert parse_sclite_utterances(REPORT) == {
        "spk1-utt1": (3, 1, 0, 1),
        "spk2-utt3": (0, 0, 2, 0),
    }
    with pytest.raises(ValueError, match="no 'Sum' row"):
        parse_sclite_report("nothing here")
    with pytest.raises(ValueError, match="disagrees"):
        parse_sclite_report(REPORT.replace("55.6  100.0", "12.0  100.0"))


def test_trn_files_use_espnet_ids(tmp_path):
    assert trn_id("utt1", "spk1") == "(spk1-utt1)"
    assert trn_id("utt1") == "(utt1-utt1)"
    with pytest.raises(ValueError, match=r"'u\(1'"):
        trn_id("u(1")
    ref, hyp = tmp_path / "ref.trn", tmp_path / "hyp.trn"
    write_trn_pair(
        ref, hyp, {"u1": ["a", "b"], "u2": ["c"]}, {"u1": ["a"], "u9": ["x"]},
        utt2spk={"u1": "s1", "u2": "s2"},
    )
    assert ref.read_text() == "a b (s1-u1)\nc (s2-u2)\n"
    # missing u2 -> empty hypothesis line; u9 has no reference -> left out
    assert hyp.read_text() == "a (s1-u1)\n(s2-u2)\n"


def test_find_sclite(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sclite_mod, "SCLITE_FALLBACK_PATHS", (str(tmp_path / "no"),))
    assert find_sclite() is None
    fake = tmp_path / "sclite"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    assert find_sclite() == str(fake)
    with pytest.raises(FileNotFoundError, match="apt-get install sctk"):
        monkeypatch.setenv("PATH", "")
        monkeypatch.setattr(sclite_mod, "SCLITE_FALLBACK_PATHS", ())
        sclite_mod.run_sclite(tmp_path / "r", tmp_path / "h")


def varied_pairs():
    """≥ 30 reference/hypothesis pairs: random edits (fixed seed) and edge cases."""
    rng = random.Random(1234)
    vocab = ("bin lay place set blue green red white at by in with "
             "a b c zero one two again now please soon").split()
    pairs = []
    for _ in range(40):  # random substitutions, deletions, insertions
        ref = [rng.choice(vocab) for _ in range(rng.randint(1, 10))]
        hyp = list(ref)
        for _ in range(rng.randint(0, 4)):
            op, pos = rng.choice("sdi"), rng.randint(0, len(hyp))
            if op == "s" and hyp:
                hyp[min(pos, len(hyp) - 1)] = rng.choice(vocab)
            elif op == "d" and hyp:
                del hyp[min(pos, len(hyp) - 1)]
            else:
                hyp.insert(pos, rng.choice(vocab))
        pairs.append((ref, hyp))
    for _ in range(10):  # unrelated hypotheses
        pairs.append(([rng.choice(vocab) for _ in range(rng.randint(1, 8))],
                      [rng.choice(vocab) for _ in range(rng.randint(0, 8))]))
    for ref, hyp in [
        ("bin blue at f two now", ""),  # empty hypothesis
        ("set red", "please set red soon again"),  # insertions at both ends
        ("a a a b b", "a b b b"),  # repeated words
        ("now now now", "now"),
        ("a c b c a e b", "f d f a c b d"),  # unit-cost Levenshtein differs
        ("p q r a b c d e", "a b c d e x y z"),
        ("Lay Green", "lay GREEN"),  # sclite folds ASCII case
        ("a b", "b a"),
        ("one", "one"),
    ]:
        pairs.append((ref.split(), hyp.split()))
    return pairs


@pytest.mark.skipif(
    find_sclite() is None, reason="sclite (Debian package sctk) not installed"
)
def test_jiwer_counts_against_sclite(tmp_path):
    """Equal error totals wherever the hypothesis is an edited reference;
    on unrelated strings jiwer (unit costs) may count fewer errors than
    sclite (costs 3/3/4), never more; the S/D/I split may differ."""
    pairs = varied_pairs()
    ref = {f"utt{i:03d}": r for i, (r, _) in enumerate(pairs)}
    hyp = {f"utt{i:03d}": h for i, (_, h) in enumerate(pairs)}
    ref["utt_missing"] = ["no", "hypothesis", "here"]  # absent from hyp
    for name, to_tokens in (("wrd", list), ("char", words_to_chars)):
        r = {u: to_tokens(w) for u, w in ref.items()}
        h = {u: to_tokens(w) for u, w in hyp.items()}
        sc = sclite_utterance_counts(r, h, tmp_path / name)
        ji = jiwer_utterance_counts(r, h)
        total = lambda c: sum(c[1:])  # noqa: E731
        assert all(total(ji[u]) <= total(sc[u]) for u in r), name
        edited = [f"utt{i:03d}" for i in range(40)] + ["utt_missing"]
        assert all(total(ji[u]) == total(sc[u]) for u in edited), name
        assert sc["utt_missing"] == ji["utt_missing"] == (0, 0, len(r["utt_missing"]), 0)
        sc_total, _ = sclite_mod.sclite_score(r, h, tmp_path / f"{name}_all", name)
        assert sc_total == total_counts(sc), name  # per-utterance counts add up
    # an unrelated pair where the costs matter: 7 errors for sclite, 6 for jiwer
    r, h = {"x": "a c b c a e b".split()}, {"x": "f d f a c b d".split()}
    assert total(sclite_utterance_counts(r, h, tmp_path / "ex")["x"]) == 7
    assert total(jiwer_utterance_counts(r, h)["x"]) == 6

    for name, texts in (("text", ref), ("hyp", hyp)):
        lines = [f"{u} {' '.join(w)}\n" for u, w in texts.items()]
        (tmp_path / name).write_text("".join(lines))
    by_sclite = score_dir(tmp_path / "text", tmp_path / "hyp", tmp_path / "s", scorer="sclite")
    by_jiwer = score_dir(tmp_path / "text", tmp_path / "hyp", tmp_path / "j", scorer="jiwer")
    assert (by_sclite["scorer"], by_jiwer["scorer"]) == ("sclite", "jiwer")
    assert by_sclite["word"]["n_ref"] == by_jiwer["word"]["n_ref"]
    assert by_jiwer["word"]["errors"] <= by_sclite["word"]["errors"]
    assert os.path.isfile(tmp_path / "s" / "sclite.wrd.txt")
    assert "scorer: sclite" in (tmp_path / "s" / "result.txt").read_text()
