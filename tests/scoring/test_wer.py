"""Tests of the project's WER/CER scorer (sclite's alignment conventions)."""

import pytest

from espnet_msrs.scoring.wer import (
    SPACE_SYMBOL,
    ErrorCounts,
    align,
    count_errors,
    read_text,
    score_files,
    score_texts,
    sclite_markup_tokens,
    words_to_chars,
)


def counts(ref: str, hyp: str, **kw) -> tuple:
    c = count_errors(align(ref.split(), hyp.split(), **kw))
    return c.correct, c.substitutions, c.deletions, c.insertions


@pytest.mark.parametrize(
    "ref, hyp, expected",
    [
        ("a b c d", "a b c d", (4, 0, 0, 0)),
        ("a b c d", "a x c d e", (3, 1, 0, 1)),
        ("a b c", "", (0, 0, 3, 0)),
        ("b", "a b c", (1, 0, 0, 2)),  # insertions at both ends
        ("a a a b", "a b", (2, 0, 2, 0)),  # repeated words
        # sclite's costs (sub 4, ins/del 3) prefer D+I over S+S here
        ("a b", "b c", (1, 0, 1, 1)),
        # unit-cost Levenshtein gives 6 errors; sclite (and we) give 7
        ("a c b c a e b", "f d f a c b d", (3, 1, 3, 3)),
        ("p q r a b c d e", "a b c d e x y z", (5, 0, 3, 3)),
    ],
)
def test_known_alignments(ref, hyp, expected):
    assert counts(ref, hyp) == expected


def test_alignment_steps_and_tie_order():
    steps = align(["a", "b"], ["b", "c"])
    assert steps == [("D", "a", None), ("C", "b", "b"), ("I", None, "c")]
    # a substitution (4) beats a deletion plus an insertion (6)
    assert align(["a"], ["b"]) == [("S", "a", "b")]
    # equal-cost paths: sclite's back-trace keeps the insertion at the end
    assert align(["a", "b"], ["b", "a"]) == [
        ("D", "a", None), ("C", "b", "b"), ("I", None, "a")
    ]


def test_case_folding_is_ascii_only_like_sclite():
    assert counts("A b", "a B") == (2, 0, 0, 0)
    assert counts("A b", "a B", case_sensitive=True) == (0, 2, 0, 0)
    assert counts("É", "é") == (0, 1, 0, 0)


def test_error_counts_sum_and_rates():
    c = count_errors(align("a b c d".split(), "a x c d e".split()))
    assert (c.n_ref, c.errors, c.n_sent, c.n_sent_err) == (4, 2, 1, 1)
    assert c.error_rate == pytest.approx(50.0)
    total = c + count_errors(align(["z"], ["z"]))
    assert (total.n_ref, total.errors, total.n_sent, total.n_sent_err) == (5, 2, 2, 1)
    assert total.to_dict()["error_rate"] == pytest.approx(40.0)
    assert ErrorCounts().error_rate == 0.0


def test_chars_use_espnet_space_symbol():
    assert words_to_chars(["ab", "c"]) == ["a", "b", SPACE_SYMBOL, "c"]
    score = score_texts({"u": ["ab", "cd"]}, {"u": ["ab", "ce"]})
    assert (score.char.n_ref, score.char.substitutions) == (5, 1)
    assert score.cer == pytest.approx(20.0)
    assert score.wer == pytest.approx(50.0)
    glued = score_texts({"u": ["ab", "cd"]}, {"u": ["abcd"]})
    assert (glued.char.deletions, glued.char.errors) == (1, 1)


def test_missing_and_extra_hyps_are_reported(tmp_path, caplog):
    ref = tmp_path / "ref"
    hyp = tmp_path / "hyp"
    ref.write_text("u1 a b c\nu2 d e\nu3 f\n")
    hyp.write_text("u1 a b c\nu3\nu9 x\n")  # u2 missing, u3 empty, u9 extra
    score = score_files(ref, hyp)
    assert score.missing_hyps == ["u2"]
    assert score.extra_hyps == ["u9"]
    assert score.n_utts == 3
    assert (score.word.n_ref, score.word.deletions, score.word.errors) == (6, 3, 3)
    assert score.wer == pytest.approx(50.0)
    assert [u.missing_hyp for u in score.utterances] == [False, True, False]
    assert "u2" in caplog.text and "u9" in caplog.text


def test_empty_reference_is_an_error_naming_it(tmp_path):
    with pytest.raises(ValueError, match="'u2'.*empty reference"):
        score_texts({"u1": ["a"], "u2": []}, {"u1": ["a"]})
    with pytest.raises(ValueError, match="no reference"):
        score_texts({}, {})


def test_read_text(tmp_path):
    path = tmp_path / "text"
    path.write_text("u1  hello   world\n\nu2\n")
    assert read_text(path) == {"u1": ["hello", "world"], "u2": []}
    path.write_text("u1 a\nu1 b\n")
    with pytest.raises(ValueError, match=r"text:2: utterance 'u1' appears twice"):
        read_text(path)


def test_sclite_markup_tokens():
    tokens = ["a", "@", "(uh)", "(", "{", "b-"]
    assert sclite_markup_tokens(tokens) == ["@", "(uh)", "{"]
