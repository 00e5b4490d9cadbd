"""Fault injection for loading: crafted, truncated and foreign files are
refused with the file named, and a pickle payload never runs (issue 11)."""

import datetime
import io
import shutil
import zipfile

import numpy as np
import pytest
import torch
import yaml

from espnet_msrs.utils.safe_load import (
    UnsafeFileError,
    check_init_params,
    check_packed_archive,
    check_state_dict_file,
    check_torch_file,
    load_torch_file,
    unpack_packed_model,
)
from tests.helpers.micro_model import (
    Payload,
    outside_path_zip,
    payload_zip,
    rewrite_member,
    save_with_payload,
    truncate,
)


@pytest.fixture()
def marker(tmp_path):
    path = tmp_path / "PAYLOAD_RAN"
    yield path
    assert not path.exists(), "the pickle payload ran"


def test_payload_really_runs_without_weights_only(tmp_path):
    """The crafted file is a real attack: torch.load(weights_only=False)
    (what ESPnet does) creates the marker."""
    ran = tmp_path / "ran"
    path = save_with_payload({"w": torch.ones(2)}, tmp_path / "m.pth", ran)
    torch.load(path, weights_only=False)
    assert ran.exists()


def test_espnet_checkpoint_loads_with_the_allow_list(micro_exp):
    ckpt = micro_exp["exp"] / "checkpoint.pth"
    with pytest.raises(Exception, match="Weights only load failed"):
        torch.load(ckpt, weights_only=True)  # torch's default list is not enough
    state = load_torch_file(ckpt, what="checkpoint")
    assert set(state) == {"model", "reporter", "optimizers", "schedulers", "scaler"}
    train = state["reporter"]["stats"][1]["train"]
    assert isinstance(train["iter_time"], np.floating)
    assert isinstance(train["time"], datetime.timedelta)
    assert state["reporter"]["epoch"] == 2
    check_torch_file(ckpt)  # memory-mapped check


def test_payload_is_refused_and_named(tmp_path, marker):
    path = save_with_payload({"w": torch.ones(2)}, tmp_path / "model.pth", marker)
    with pytest.raises(UnsafeFileError) as err:
        load_torch_file(path, what="model file")
    assert err.value.kind == "unsafe"
    assert str(path) in str(err.value) and "open" in str(err.value)
    with pytest.raises(UnsafeFileError, match="refusing to load"):
        check_state_dict_file(path)


def test_object_arrays_are_not_allowed(tmp_path):
    path = tmp_path / "obj.pth"
    torch.save({"x": np.array([Payload(tmp_path / "m")], dtype=object)}, path)
    with pytest.raises(UnsafeFileError) as err:
        load_torch_file(path)
    assert err.value.kind == "unsafe"
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("fraction", [0.0, 0.5, 0.99])
def test_truncated_file_is_named_as_such(micro_exp, tmp_path, fraction):
    path = tmp_path / "checkpoint.pth"
    shutil.copy(micro_exp["exp"] / "checkpoint.pth", path)
    truncate(path, fraction)
    with pytest.raises(UnsafeFileError) as err:
        check_torch_file(path, what="checkpoint")
    assert err.value.kind == "corrupt" and err.value.path == path
    assert ("empty" if fraction == 0.0 else "truncated or corrupt") in str(err.value)


def test_foreign_file_names_path_not_unpickling_error(micro_exp, tmp_path):
    """--init_param of a YAML file: ESPnet's own error does not name it."""
    config = micro_exp["config"]
    with pytest.raises(Exception) as raw:
        torch.load(config, weights_only=False)
    assert str(config) not in str(raw.value)
    with pytest.raises(UnsafeFileError) as err:
        check_init_params([f"{config}:encoder:encoder"])
    message = str(err.value)
    assert str(config) in message and "--init_param" in message
    assert "not a file written by torch.save" in message


def test_state_dict_check_rejects_a_training_checkpoint(micro_exp):
    with pytest.raises(UnsafeFileError, match="use <N>epoch.pth"):
        check_state_dict_file(micro_exp["exp"] / "checkpoint.pth", what="--init_param")
    check_init_params([str(micro_exp["exp"] / "1epoch.pth")])
    check_init_params(None)


def test_missing_file(tmp_path):
    with pytest.raises(UnsafeFileError) as err:
        load_torch_file(tmp_path / "nope.pth", what="mask")
    assert err.value.kind == "missing" and "mask not found" in str(err.value)


# ------------------------------------------------------------------ archives
def test_good_archive_passes_and_unpacks(micro_zip, tmp_path):
    meta = check_packed_archive(micro_zip, tmp_path)
    assert set(meta["files"]) == {"asr_model_file"}
    files = unpack_packed_model(micro_zip, tmp_path / "cache")
    assert set(files) == {"asr_model_file", "asr_train_config"}
    for path in files.values():
        assert str(tmp_path / "cache") in path
    state = load_torch_file(files["asr_model_file"])
    assert all(torch.is_tensor(v) for v in state.values())


def test_payload_archive_never_runs(micro_zip, tmp_path, marker):
    bad = payload_zip(micro_zip, tmp_path / "model.zip", marker)
    with pytest.raises(UnsafeFileError) as err:
        unpack_packed_model(bad, tmp_path / "cache")
    assert err.value.kind == "unsafe" and "asr_model_file" in str(err.value)


@pytest.mark.parametrize("outside", ["/etc/hostname", "../../outside.pth",
                                     "exp/not_in_archive.pth"])
def test_meta_entry_outside_the_archive_is_refused(micro_zip, tmp_path, outside):
    bad = outside_path_zip(micro_zip, tmp_path / "model.zip", outside)
    cache = tmp_path / "cache"
    with pytest.raises(UnsafeFileError) as err:
        unpack_packed_model(bad, cache)
    assert err.value.kind == "outside" and repr(outside) in str(err.value)
    assert not cache.exists() or not any(p.is_file() for p in cache.rglob("*"))


def test_outside_path_to_an_existing_model_is_refused(micro_exp, micro_zip, tmp_path):
    """The reported attack: asr_model_file pointing at a real file elsewhere."""
    bad = outside_path_zip(micro_zip, tmp_path / "model.zip",
                           micro_exp["exp"] / "1epoch.pth")
    with pytest.raises(UnsafeFileError, match="points outside the packed model"):
        unpack_packed_model(bad, tmp_path / "cache")


@pytest.mark.parametrize("fraction", [0.3, 0.9])
def test_corrupt_zip_names_the_file(micro_zip, tmp_path, fraction):
    bad = tmp_path / "model.zip"
    shutil.copy(micro_zip, bad)
    truncate(bad, fraction)
    with pytest.raises(UnsafeFileError) as err:
        unpack_packed_model(bad, tmp_path / "cache")
    assert err.value.kind == "corrupt" and str(bad) in str(err.value)
    assert "not a readable model archive" in str(err.value)


def test_archive_without_meta_or_with_escaping_member(tmp_path):
    plain = tmp_path / "plain.zip"
    with zipfile.ZipFile(plain, "w") as zf:
        zf.writestr("model.pth", b"x")
    with pytest.raises(UnsafeFileError, match="no meta.yaml"):
        check_packed_archive(plain, tmp_path)
    escaping = tmp_path / "escaping.zip"
    with zipfile.ZipFile(escaping, "w") as zf:
        zf.writestr("meta.yaml", yaml.safe_dump({"files": {}, "yaml_files": {}}))
        zf.writestr("../../escaped.txt", "owned")
    with pytest.raises(ValueError, match="escaped.txt"):
        check_packed_archive(escaping, tmp_path / "out")


def test_tar_archive_is_checked_the_same_way(micro_zip, tmp_path, marker):
    import tarfile

    bad_zip = payload_zip(micro_zip, tmp_path / "p.zip", marker)
    tar_path = tmp_path / "model.tar.gz"
    with zipfile.ZipFile(bad_zip) as zf, tarfile.open(tar_path, "w:gz") as tar:
        for name in zf.namelist():
            data = zf.read(name)
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(UnsafeFileError) as err:
        unpack_packed_model(tar_path, tmp_path / "cache")
    assert err.value.kind == "unsafe"


def test_rewrite_member_helper_keeps_other_members(micro_zip, tmp_path):
    out = rewrite_member(micro_zip, tmp_path / "x.zip", "meta.yaml", b"files: {}\n")
    with zipfile.ZipFile(micro_zip) as a, zipfile.ZipFile(out) as b:
        assert a.namelist() == b.namelist()
        assert b.read("meta.yaml") == b"files: {}\n"
