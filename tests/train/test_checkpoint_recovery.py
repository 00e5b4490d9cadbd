"""Fault injection: a kill during ESPnet's checkpoint save (issue 11 item 3).

The micro training (tests/helpers/micro_model.py) is real ESPnet training
through MSRSTrainer; a kill is a ``torch.save`` that writes half the file
and raises, with the end-of-run recovery disabled (a SIGKILL runs no
``finally``)."""

import logging
import shutil

import pytest
import torch

from espnet_msrs.train import checkpoint_recovery
from espnet_msrs.train.checkpoint_recovery import (
    CHECKPOINT,
    PREVIOUS,
    prepare,
    recover_checkpoint,
)
from espnet_msrs.utils.safe_load import UnsafeFileError, load_torch_file
from tests.helpers.micro_model import save_with_payload, train_micro, truncate


@pytest.fixture()
def exp_copy(micro_exp, tmp_path):
    return shutil.copytree(micro_exp["exp"], tmp_path / "train", symlinks=True)


def _models_equal(a, b):
    assert set(a) == set(b)
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=0, msg=k)


def test_intact_checkpoint_is_kept_and_previous_dropped(exp_copy):
    shutil.copy(exp_copy / CHECKPOINT, exp_copy / PREVIOUS)
    assert recover_checkpoint(exp_copy) == 2
    assert (exp_copy / CHECKPOINT).is_file() and not (exp_copy / PREVIOUS).exists()


def test_truncated_checkpoint_falls_back_to_the_previous_one(exp_copy, caplog):
    # As after a kill in epoch 3's save: the previous state is epoch 2's.
    shutil.copy(exp_copy / CHECKPOINT, exp_copy / PREVIOUS)
    truncate(exp_copy / CHECKPOINT, 0.4)
    with caplog.at_level(logging.WARNING):
        assert recover_checkpoint(exp_copy) == 2
    assert (exp_copy / (CHECKPOINT + ".broken")).is_file()
    assert load_torch_file(exp_copy / CHECKPOINT)["reporter"]["epoch"] == 2
    assert "moved aside to checkpoint.pth.broken" in caplog.text
    assert "resuming from the state of epoch 2" in caplog.text


def test_no_complete_state_restarts_the_phase_saying_so(exp_copy, caplog):
    truncate(exp_copy / CHECKPOINT, 0.5)
    with caplog.at_level(logging.WARNING):
        assert recover_checkpoint(exp_copy) is None
    assert not (exp_copy / CHECKPOINT).exists()
    assert "restarting this training phase from epoch 1" in caplog.text


def test_truncated_epoch_file_is_rewritten_from_the_checkpoint(exp_copy, caplog):
    before = load_torch_file(exp_copy / "2epoch.pth")
    truncate(exp_copy / "2epoch.pth", 0.5)
    truncate(exp_copy / "1epoch.pth", 0.5)  # an older one cannot be rebuilt
    with caplog.at_level(logging.WARNING):
        assert recover_checkpoint(exp_copy) == 2
    _models_equal(load_torch_file(exp_copy / "2epoch.pth"), before)
    assert (exp_copy / "1epoch.pth.broken").is_file() and not (exp_copy / "1epoch.pth").exists()
    assert "rewritten from checkpoint.pth (epoch 2)" in caplog.text


def test_a_checkpoint_with_a_payload_is_refused_not_moved(exp_copy, tmp_path):
    marker = tmp_path / "PAYLOAD_RAN"
    state = load_torch_file(exp_copy / CHECKPOINT)
    save_with_payload(state, exp_copy / CHECKPOINT, marker)
    with pytest.raises(UnsafeFileError) as err:
        recover_checkpoint(exp_copy)
    assert err.value.kind == "unsafe"
    assert (exp_copy / CHECKPOINT).is_file() and not marker.exists()


def test_not_resuming_discards_an_old_previous_checkpoint(exp_copy):
    shutil.copy(exp_copy / CHECKPOINT, exp_copy / PREVIOUS)
    assert prepare(exp_copy, resume=False) is None
    assert not (exp_copy / PREVIOUS).exists() and (exp_copy / CHECKPOINT).is_file()


class Killed(Exception):
    pass


def test_kill_during_checkpoint_save_then_rerun_equals_uninterrupted(
    micro_exp, tmp_path, monkeypatch, caplog
):
    out = tmp_path / "train"
    real_save = torch.save

    def save_killed_in_epoch2(obj, f, *args, **kwargs):
        if str(f).endswith(CHECKPOINT) and obj["reporter"]["epoch"] == 2:
            real_save(obj, f, *args, **kwargs)
            truncate(f, 0.5)
            raise Killed
        return real_save(obj, f, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(torch, "save", save_killed_in_epoch2)
        m.setattr(checkpoint_recovery, "recover_checkpoint", lambda d: None)
        with pytest.raises(Killed):
            train_micro(micro_exp, out)
    # What a SIGKILL leaves: a truncated checkpoint.pth, epoch 1's beside it.
    with pytest.raises(RuntimeError, match="zip archive"):
        torch.load(out / CHECKPOINT, weights_only=False)  # ESPnet's resume fails
    assert load_torch_file(out / PREVIOUS)["reporter"]["epoch"] == 1

    with caplog.at_level(logging.INFO):
        train_micro(micro_exp, out, "--resume", "true")
    assert "resuming from the state of epoch 1" in caplog.text
    assert (out / (CHECKPOINT + ".broken")).is_file() and not (out / PREVIOUS).exists()
    healed = load_torch_file(out / CHECKPOINT)
    reference = load_torch_file(micro_exp["exp"] / CHECKPOINT)
    assert healed["reporter"]["epoch"] == 2
    _models_equal(healed["model"], reference["model"])
    _models_equal(load_torch_file(out / "valid.acc.ave_2best.pth"),
                  load_torch_file(micro_exp["exp"] / "valid.acc.ave_2best.pth"))
