"""Tests of atomic writes: the destination is the old file or the new one."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

from espnet_msrs.utils import atomic


def leftovers(directory):
    return sorted(p.name for p in directory.iterdir() if atomic.is_temporary(p))


def test_write_text_replaces_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "text"
    path.write_text("old\n")
    atomic.write_text(path, "utt1 HÉLLO\n")
    assert path.read_text(encoding="utf-8") == "utt1 HÉLLO\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["text"]


def test_writer_error_keeps_old_content_and_removes_temporary(tmp_path):
    path = tmp_path / "result.json"
    path.write_text("old")
    with pytest.raises(RuntimeError, match="disk on fire"):
        with atomic.atomic_open(path) as f:
            f.write("half a fi")
            raise RuntimeError("disk on fire")
    assert path.read_text() == "old"
    assert leftovers(tmp_path) == []


def test_unserialisable_json_leaves_file_untouched(tmp_path):
    path = tmp_path / "r.json"
    atomic.write_json(path, {"wer": 1.5})
    with pytest.raises(TypeError):
        atomic.write_json(path, {"bad": object()})
    assert json.loads(path.read_text()) == {"wer": 1.5}
    assert path.read_text().endswith("}\n")
    assert leftovers(tmp_path) == []


def test_kill_during_write_keeps_old_file(tmp_path):
    """SIGKILL in the middle of a write: the old file is intact, only a
    hidden temporary file is left beside it."""
    path = tmp_path / "checkpoint.pth"
    torch.save({"epoch": 1}, path)
    script = textwrap.dedent(
        f"""
        import os, signal
        from espnet_msrs.utils.atomic import atomic_open
        with atomic_open({str(path)!r}, "wb") as f:
            f.write(b"PK" + b"x" * 1000)
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script])
    assert proc.returncode == -signal.SIGKILL
    assert torch.load(path, weights_only=True) == {"epoch": 1}
    left = leftovers(tmp_path)
    assert len(left) == 1 and left[0].startswith(".checkpoint.pth.tmp-")


def test_torch_save_round_trip(tmp_path):
    path = tmp_path / "mask.pth"
    state = {"w": torch.arange(6.0).reshape(2, 3)}
    atomic.torch_save(state, path)
    loaded = torch.load(path, weights_only=True)
    assert torch.equal(loaded["w"], state["w"])


def test_atomic_path_keeps_suffix_and_commits(tmp_path):
    path = tmp_path / "clip.wav"
    with atomic.atomic_path(path) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".wav" and tmp.exists()
        tmp.write_bytes(b"RIFF")
        assert not path.exists()
    assert path.read_bytes() == b"RIFF"
    assert leftovers(tmp_path) == []


def test_atomic_path_writer_removing_temporary_is_an_error(tmp_path):
    path = tmp_path / "x.npy"
    with pytest.raises(FileNotFoundError, match="removed its temporary file"):
        with atomic.atomic_path(path) as tmp:
            tmp.unlink()
    assert not path.exists()


def test_permissions_follow_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic.write_bytes(tmp_path / "a.bin", b"\x00\x01")
    finally:
        os.umask(old)
    assert (tmp_path / "a.bin").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01"


def test_copy_file_copies_content_and_mode(tmp_path):
    src = tmp_path / "run.sh"
    src.write_text("#!/bin/sh\necho hi\n")
    src.chmod(0o755)
    dst = tmp_path / "copy.sh"
    dst.write_text("old")
    atomic.copy_file(src, dst)
    assert dst.read_text() == "#!/bin/sh\necho hi\n"
    assert dst.stat().st_mode & 0o777 == 0o755
    assert leftovers(tmp_path) == []


def test_bad_mode_is_refused(tmp_path):
    with pytest.raises(ValueError, match="mode='a'"):
        with atomic.atomic_open(tmp_path / "x", "a"):
            pass
    assert list(tmp_path.iterdir()) == []


def test_missing_directory_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        atomic.write_text(tmp_path / "nope" / "x.txt", "x")
