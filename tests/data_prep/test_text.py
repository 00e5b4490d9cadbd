"""espnet_msrs.data_prep.text: the one normaliser, token-id labels."""

import pytest

from espnet_msrs.data_prep.text import (
    ids_to_text,
    looks_like_token_ids,
    normalize_text,
    read_token_units,
)


@pytest.mark.parametrize("raw, expected", [
    ("well, I don't {NS} know - it's FINE.", "WELL I DON'T KNOW IT'S FINE"),  # LRS3 / labels
    ("it\u2019s 2 o'clock, ok? {LG} ", "IT'S 2 O'CLOCK OK"),  # typographic apostrophe
    ("Jos\u00e9 said: \"no!\"", "JOS\u00c9 SAID NO"),  # accents kept, quotes dropped
    ("rock'n'roll ' -- '", "ROCK'N'ROLL"),  # stray apostrophes and dashes are no words
    ("{LG}", ""),
])
def test_normalize_text(raw, expected):
    assert normalize_text(raw) == expected
    assert normalize_text(expected) == expected  # idempotent


def test_token_id_detection():
    assert looks_like_token_ids(["4363 4931 1204", "12 7", ""])
    assert not looks_like_token_ids(["HELLO THERE", "12 7"])
    assert not looks_like_token_ids(["2017", "42"])  # lone numbers can be words
    assert not looks_like_token_ids([])


def test_ids_to_text_with_a_unit_list(tmp_path):
    units = tmp_path / "units.txt"
    units.write_text("<unk> 1\n\u2581HEL 2\nLO 3\n\u2581WORLD 4\n")
    table = read_token_units(units)
    assert ids_to_text("2 3 4", table, "labels.csv:2") == "HELLO WORLD"
    with pytest.raises(ValueError, match="labels.csv:3: token id 9 is not in the unit list"):
        ids_to_text("2 9", table, "labels.csv:3")
    units.write_text("<unk> 1\nbroken\n")
    with pytest.raises(ValueError, match=r"units.txt:2: expected '<piece> <id>'"):
        read_token_units(units)
