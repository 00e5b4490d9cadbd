"""espnet_msrs.utils.fingerprint: what changes a stage's input signature, and
which artifacts a stage marker refuses to vouch for."""

import json
import os
import zipfile

import pytest
import torch

from espnet_msrs.utils import fingerprint as fp


def test_small_files_by_content_large_by_size_and_time(tmp_path, monkeypatch):
    f = tmp_path / "labels.csv"
    f.write_text("a,b,c,d\n")
    first = fp.fingerprint([f])
    os.utime(f, ns=(1, 1))  # touched, same content: same fingerprint
    assert fp.fingerprint([f]) == first
    f.write_text("a,b,c,e\n")
    assert fp.fingerprint([f]) != first
    monkeypatch.setattr(fp, "HASH_LIMIT", 4)  # now a "large" file: size + time
    large = fp.fingerprint([f])
    os.utime(f, ns=(2, 2))
    assert fp.fingerprint([f]) != large


def test_trees_scps_and_missing_paths(tmp_path, monkeypatch):
    tree = tmp_path / "corpus"
    (tree / "spk").mkdir(parents=True)
    (tree / "spk" / "1.mp4").write_bytes(b"x")
    (tree / ".hidden").write_bytes(b"temporary")
    base = fp.fingerprint([tree])
    (tree / ".hidden").write_bytes(b"ignored")  # hidden files are no input
    (tree / "__pycache__").mkdir()
    assert fp.fingerprint([tree]) == base
    (tree / "spk" / "2.mp4").write_bytes(b"y")
    added = fp.fingerprint([tree])
    assert added != base
    monkeypatch.setattr(fp, "TREE_FILE_LIMIT", 1)  # a large tree: directory times
    assert fp.path_lines(tree)[0] == f"tree {tree} (directory times)"
    scp = tmp_path / "wav.scp"
    scp.write_text(f"u1 {tree / 'spk' / '1.mp4'}\n")
    before = fp.fingerprint(scps=[scp])
    (tree / "spk" / "1.mp4").write_bytes(b"longer")  # the listed file changed
    assert fp.fingerprint(scps=[scp]) != before
    assert fp.path_lines(tmp_path / "nope") == [f"missing {tmp_path / 'nope'}"]
    assert fp.fingerprint(texts=["--nj 4"]) != fp.fingerprint(texts=["--nj 2"])


def test_verify_artifact(tmp_path):
    good = tmp_path / "mask.pth"
    torch.save({"masks": {"w": torch.ones(3)}}, good)
    assert fp.verify_artifact(good) is None
    truncated = tmp_path / "init.pth"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    assert "init.pth: cannot be loaded" in fp.verify_artifact(truncated)

    class Payload:  # a pickle that would run code: refused by weights_only
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    torch.save({"x": Payload()}, tmp_path / "evil.pth")
    assert "cannot be loaded" in fp.verify_artifact(tmp_path / "evil.pth")
    assert not (tmp_path / "pwned").exists()
    (tmp_path / "r.json").write_text("{")
    assert "r.json: cannot be loaded" in fp.verify_artifact(tmp_path / "r.json")
    (tmp_path / "ok.json").write_text(json.dumps({"a": 1}))
    assert fp.verify_artifact(tmp_path / "ok.json") is None
    with zipfile.ZipFile(tmp_path / "m.zip", "w") as z:
        z.writestr("meta.yaml", "a: 1\n" * 100)
    data = bytearray((tmp_path / "m.zip").read_bytes())
    data[40] ^= 0xFF  # a flipped byte inside the member
    (tmp_path / "bad.zip").write_bytes(bytes(data))
    assert fp.verify_artifact(tmp_path / "m.zip") is None
    assert "bad.zip" in fp.verify_artifact(tmp_path / "bad.zip")
    (tmp_path / "empty.txt").write_text("")
    assert fp.verify_artifact(tmp_path / "empty.txt") == f"{tmp_path / 'empty.txt'}: empty"
    assert fp.verify_artifact(tmp_path / "no.pth") == f"{tmp_path / 'no.pth'}: missing"


@pytest.mark.parametrize("args, rc", [(["verify"], 1), (["inputs", "--text", "a"], 0)])
def test_command_line(tmp_path, capsys, args, rc):
    from espnet_msrs.bin.fingerprint import main

    (tmp_path / "x.json").write_text("{")
    cmd = args + ([str(tmp_path / "x.json")] if args == ["verify"] else [])
    assert main(cmd) == rc
    if rc == 0:
        assert len(capsys.readouterr().out.strip()) == 16
