"""espnet_msrs.utils.data_dir: reading with clear errors, writing, subset,
combine, length filter, deterministic fractions, split/merge."""

import pytest

from espnet_msrs.utils.data_dir import (
    Utterance,
    combine_data_dirs,
    filter_data_dir,
    merge_files,
    read_kv,
    select_fraction,
    split_file,
    split_lines,
    subset_data_dir,
    write_data_dir,
    write_if_changed,
)


# ------------------------------------------------------------------ reading
def test_read_kv_keeps_file_order(tmp_path):
    f = tmp_path / "wav.scp"
    f.write_text("b /x/b.wav\na /x/a b.wav\n")
    assert list(read_kv(f).items()) == [("b", "/x/b.wav"), ("a", "/x/a b.wav")]


@pytest.mark.parametrize("content, allow_empty, message", [
    (b"u1 HELLO\nu2 W\xffRLD\n", True,
     "text:2: not valid UTF-8 (byte 0xff at column 5); convert the file to UTF-8"),
    (b"u1 A\nu1 B\n", False, "text:2: duplicate key 'u1' (first on line 1)"),
    (b"u1 A\nu2\n", False, "text:2: expected '<key> <value>', got 'u2'"),
    (b"u1 A\n\nu2 B\n", False, "text:2: empty line; expected '<key> <value>'"),
])
def test_read_kv_errors_name_file_and_line(tmp_path, content, allow_empty, message):
    f = tmp_path / "text"
    f.write_bytes(content)
    with pytest.raises(ValueError) as e:
        read_kv(f, allow_empty_value=allow_empty)
    assert str(e.value) == f"{f}:{message.split(':', 1)[1]}"


def test_read_kv_allows_an_empty_transcript(tmp_path):
    f = tmp_path / "text"
    f.write_text("u1 A\nu2\n")
    assert read_kv(f, allow_empty_value=True) == {"u1": "A", "u2": ""}


# ------------------------------------------------------------------ writing
def test_write_if_changed_leaves_an_unchanged_file_alone(tmp_path):
    f = tmp_path / "d" / "text"
    assert write_if_changed(f, "a A\n") is True
    mtime = f.stat().st_mtime_ns
    assert write_if_changed(f, "a A\n") is False and f.stat().st_mtime_ns == mtime
    assert write_if_changed(f, "a B\n") is True and f.read_text() == "a B\n"
    assert [p.name for p in f.parent.iterdir()] == ["text"]  # no temporary left


def test_write_data_dir_files_and_errors(tmp_path):
    utts = [Utterance("s2_b", "s2", "B", wav="/b.wav"), Utterance("s1_a", "s1", "A", wav="/a.wav")]
    assert write_data_dir(tmp_path / "d", utts, always=("landmark.scp",)) == 2
    d = tmp_path / "d"
    assert (d / "text").read_text() == "s1_a A\ns2_b B\n"
    assert (d / "wav.scp").read_text() == "s1_a /a.wav\ns2_b /b.wav\n"
    assert (d / "spk2utt").read_text() == "s1 s1_a\ns2 s2_b\n"
    assert (d / "landmark.scp").read_text() == "" and not (d / "video.scp").exists()
    with pytest.raises(ValueError, match="must start with its speaker id"):
        write_data_dir(tmp_path / "e", [Utterance("x_a", "s1", "A")])
    with pytest.raises(ValueError, match="duplicate utterance id 's1_a'"):
        write_data_dir(tmp_path / "e", [Utterance("s1_a", "s1", "A")] * 2)


# ---------------------------------------------------------- subset, combine
def _dir(path, utts, with_video=True):
    write_data_dir(path, [Utterance(u, u.split("_")[0], f"T {u}", wav=f"/{u}.wav",
                                    video=f"/{u}.mp4" if with_video else None) for u in utts])
    return path


def test_subset_and_combine(tmp_path):
    a = _dir(tmp_path / "a", ["s1_x", "s1_y", "s2_z"])
    b = _dir(tmp_path / "b", ["s3_w"])
    assert subset_data_dir(a, tmp_path / "sub", ["s1_y", "s2_z"]) == 2
    assert (tmp_path / "sub" / "video.scp").read_text() == "s1_y /s1_y.mp4\ns2_z /s2_z.mp4\n"
    assert (tmp_path / "sub" / "spk2utt").read_text() == "s1 s1_y\ns2 s2_z\n"
    assert combine_data_dirs([a, b], tmp_path / "ab") == 4
    assert (tmp_path / "ab" / "text").read_text().splitlines()[-1] == "s3_w T s3_w"
    with pytest.raises(ValueError, match="is in both"):
        combine_data_dirs([a, a], tmp_path / "aa")
    c = _dir(tmp_path / "c", ["s4_v"], with_video=False)
    with pytest.raises(ValueError, match="video.scp exists in .* but not in .*c"):
        combine_data_dirs([a, c], tmp_path / "ac")


def test_filter_data_lists_removed(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    durs = {"a": 0.2, "b": 1.0, "c": 30.0}
    (src / "utt2dur").write_text("".join(f"{u} {d}\n" for u, d in durs.items()))
    (src / "text").write_text("a A\nb B\nc C\n")
    (src / "wav.scp").write_text("a a.wav\nb b.wav\nc c.wav\n")
    (src / "utt2spk").write_text("a s1\nb s1\nc s2\n")
    removed = filter_data_dir(src, tmp_path / "dst", 0.3, 20.0)
    assert removed == {"a": "too short: 0.200 s < min_dur=0.3 s",
                       "c": "too long: 30.000 s > max_dur=20.0 s"}
    dst = tmp_path / "dst"
    assert (dst / "text").read_text() == "b B\n"
    assert (dst / "spk2utt").read_text() == "s1 b\n"
    assert (dst / "removed.txt").read_text().splitlines() == [
        "a\ttoo short: 0.200 s < min_dur=0.3 s", "c\ttoo long: 30.000 s > max_dur=20.0 s"]


# ----------------------------------------------------- deterministic fraction
def test_select_fraction_is_exact_and_the_same_for_the_same_seed():
    keys = [f"u{i:03d}" for i in range(101)]
    first = select_fraction(keys, 0.3, seed=7)
    assert len(first) == 30 and set(first) <= set(keys) and first == sorted(first)
    assert select_fraction(list(reversed(keys)), 0.3, seed=7) == first  # file order is irrelevant
    assert select_fraction(keys, 0.3, seed=8) != first
    assert set(first) <= set(select_fraction(keys, 0.5, seed=7))  # nested in a larger fraction
    assert select_fraction(keys, 1.0, seed=7) == keys
    assert len(select_fraction(keys, 0.001, seed=7)) == 1
    with pytest.raises(ValueError, match=r"fraction=1.5 must be in \(0, 1\]"):
        select_fraction(keys, 1.5, seed=0)


# ------------------------------------------------------------- split / merge
def test_split_lines_balanced_and_ordered():
    parts = split_lines([f"u{i}" for i in range(10)], 4)
    assert [len(p) for p in parts] == [3, 3, 2, 2]
    assert sum(parts, []) == [f"u{i}" for i in range(10)]
    with pytest.raises(ValueError, match="non-empty parts"):
        split_lines(["a"], 2)


def test_split_then_merge_round_trip(tmp_path):
    text = tmp_path / "text"
    text.write_text("".join(f"u{i:02d} WORD {i}\n" for i in range(7)))
    keys = split_file(str(text), str(tmp_path / "keys.JOB.scp"), 3, keys_only=True)
    assert [p.read_text().split() for p in keys] == [
        ["u00", "u01", "u02"], ["u03", "u04"], ["u05", "u06"]]
    parts = []
    for i, p in enumerate(keys, 1):  # decode jobs write their parts (out of order)
        out = tmp_path / f"hyp.{i}"
        out.write_text("".join(f"{k} HYP {k}\n" for k in reversed(p.read_text().split())))
        parts.append(str(out))
    report = merge_files(parts[::-1], str(tmp_path / "merged"), expect_keys=str(text))
    assert (tmp_path / "merged").read_text().splitlines() == [
        f"u{i:02d} HYP u{i:02d}" for i in range(7)]
    assert report == {"missing": [], "unexpected": [], "left_out": []}
    report = merge_files(parts[:2], str(tmp_path / "m2"), expect_keys=str(text))
    assert report["missing"] == ["u05", "u06"]
    with pytest.raises(ValueError, match="appears twice"):
        merge_files([parts[0], parts[0]], str(tmp_path / "m3"))
    with pytest.raises(ValueError, match="does not exist"):
        merge_files([str(tmp_path / "nope")], str(tmp_path / "m4"))


def test_merge_accepts_keys_the_jobs_left_out(tmp_path, caplog):
    """Decoding jobs list the utterances they left out (bad_utts.txt): those
    keys are absent on purpose, collected with their reasons, not 'missing'."""
    text = tmp_path / "text"
    text.write_text("".join(f"u{i} W\n" for i in range(4)))
    (tmp_path / "hyp.1").write_text("u0 A\n")
    (tmp_path / "hyp.2").write_text("u3 B\n")
    (tmp_path / "bad.1").write_text("u1\tRuntimeError: cannot read\n")
    (tmp_path / "bad.2").write_text("")
    out, bad = tmp_path / "merged", tmp_path / "bad_utts.txt"
    bad.write_text("old\tstale\n")  # an old list never outlives a new merge
    with caplog.at_level("WARNING"):
        report = merge_files([tmp_path / "hyp.1", tmp_path / "hyp.2"], out, text,
                             left_out=[tmp_path / "bad.1", tmp_path / "bad.2"],
                             left_out_out=bad)
    assert report == {"missing": ["u2"], "unexpected": [], "left_out": ["u1"]}
    assert out.read_text() == "u0 A\nu3 B\n"
    assert bad.read_text() == "u1\tRuntimeError: cannot read\n"
    assert "1 key(s) left out by their jobs, e.g. u1: RuntimeError: cannot read" in caplog.text
    assert "1 missing key(s), e.g. ['u2']" in caplog.text
    merge_files([tmp_path / "hyp.1"], out, left_out=[tmp_path / "bad.2"], left_out_out=bad)
    assert bad.read_text() == ""
    (tmp_path / "bad.3").write_text("u0\tlisted but decoded\n")
    with pytest.raises(ValueError, match="'u0' is listed as left out in .*bad.3"):
        merge_files([tmp_path / "hyp.1"], out, left_out=[tmp_path / "bad.3"])
