"""Tests of safe_extract: archive members must not escape the target directory."""

import io
import os
import tarfile
import zipfile

import pytest

from espnet_msrs.utils.safe_extract import check_archive, safe_extract


def make_tar(path, members):
    """members: (name, kind, data or link target); kind file|dir|symlink|hardlink|fifo."""
    with tarfile.open(path, "w:gz" if str(path).endswith("gz") else "w") as tar:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
                         "hardlink": tarfile.LNKTYPE, "fifo": tarfile.FIFOTYPE}[kind]
            if kind in ("symlink", "hardlink"):
                info.linkname = payload
            tar.addfile(info)
    return path


def make_zip(path, members):
    with zipfile.ZipFile(path, "w") as zf:
        for name, kind, payload in members:
            info = zipfile.ZipInfo(name)
            if kind == "symlink":
                info.external_attr = (0o120777 << 16)
            zf.writestr(info, payload)
    return path


GOOD = b"model weights"


@pytest.mark.parametrize("fmt", ["tar", "tar.gz", "zip"])
@pytest.mark.parametrize(
    "bad_name", ["../x", "a/../../x", "/abs/x", "\\\\server\\x", "C:/x"]
)
def test_refuses_escaping_names_and_extracts_nothing(tmp_path, fmt, bad_name):
    members = [("meta.yaml", "file", b"files: {}\n"), (bad_name, "file", b"evil")]
    archive = tmp_path / f"model.{fmt}"
    (make_zip if fmt == "zip" else make_tar)(archive, members)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=f"member {bad_name!r}".replace("\\", "\\\\")):
        safe_extract(archive, out)
    assert not out.exists()  # checked all members first: nothing written
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    "members, bad",
    [
        ([("lnk", "symlink", "../outside")], "lnk"),
        ([("lnk", "symlink", "/etc")], "lnk"),
        # each link alone stays inside, together they climb out
        ([("here", "symlink", "."), ("up", "symlink", "here/..")], "up"),
        # a file written through a link that leads outside
        ([("d", "dir", None), ("d/l", "symlink", "../.."), ("d/l/evil", "file", b"x")],
         "d/l"),
        ([("hard", "hardlink", "../outside")], "hard"),
        ([("fifo", "fifo", None)], "fifo"),
    ],
)
def test_refuses_links_escaping(tmp_path, members, bad):
    archive = make_tar(tmp_path / "a.tar", [("ok.txt", "file", GOOD)] + members)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=f"member '{bad}'"):
        safe_extract(archive, out)
    assert not out.exists()


def test_refuses_zip_symlink_escape(tmp_path):
    members = [("ok", "file", GOOD), ("l", "symlink", "../../etc")]
    archive = make_zip(tmp_path / "a.zip", members)
    with pytest.raises(ValueError, match="member 'l': symlink target"):
        safe_extract(archive, tmp_path / "out")


def test_refuses_writing_through_existing_link_on_disk(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", out / "cache")
    archive = make_tar(tmp_path / "a.tar", [("cache/model.pth", "file", GOOD)])
    with pytest.raises(ValueError, match="member 'cache/model.pth'"):
        check_archive(archive, out)
    with pytest.raises(ValueError, match="member 'cache/model.pth'"):
        safe_extract(archive, out)
    assert list((tmp_path / "elsewhere").iterdir()) == []


@pytest.mark.parametrize("fmt", ["tar.gz", "zip"])
def test_extracts_a_normal_archive(tmp_path, fmt):
    members = [
        ("meta.yaml", "file", b"files: {asr_model_file: exp/model.pth}\n"),
        ("exp/model.pth", "file", GOOD),
        ("exp/config/asr.yaml", "file", b"encoder: conformer\n"),
    ]
    archive = tmp_path / f"model.{fmt}"
    if fmt == "zip":
        make_zip(archive, members)
    else:
        make_tar(archive, members + [("exp/latest.pth", "symlink", "model.pth")])
    out = tmp_path / "out"
    check_archive(archive, out)
    paths = safe_extract(archive, out)
    assert paths[:3] == [
        out / "meta.yaml", out / "exp/model.pth", out / "exp/config/asr.yaml"
    ]
    assert (out / "exp/model.pth").read_bytes() == GOOD
    assert (out / "exp/config/asr.yaml").read_text() == "encoder: conformer\n"
    if fmt != "zip":
        assert os.readlink(out / "exp/latest.pth") == "model.pth"
        assert (out / "exp/latest.pth").read_bytes() == GOOD


def test_unsupported_archive(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(b"not an archive")
    with pytest.raises(ValueError, match="not a supported archive; allowed: zip, tar"):
        safe_extract(path, tmp_path / "out")
