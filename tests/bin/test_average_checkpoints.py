"""Stage 10 on a real ESPnet training: it takes the average ESPnet's trainer
wrote when that one is exact (no second averaging), and averages once, for
one criterion, otherwise; unsafe or truncated files are named, payloads
never run."""

import logging
import os
import shutil

import pytest
import torch

from espnet_msrs.bin.average_checkpoints import average_checkpoints
from espnet_msrs.utils.safe_load import load_torch_file
from tests.helpers.micro_model import save_with_payload, truncate


@pytest.fixture()
def exp(micro_exp, tmp_path):
    return shutil.copytree(micro_exp["exp"], tmp_path / "train", symlinks=True)


def _mean_of_epochs(exp, epochs):
    states = [load_torch_file(exp / f"{e}epoch.pth") for e in epochs]
    return {k: sum(s[k] for s in states) / len(states) if states[0][k].is_floating_point()
            else sum(s[k] for s in states) for k in states[0]}


def _assert_state_close(a, b, atol=1e-6):
    assert set(a) == set(b)
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=atol, rtol=0, msg=k)


def test_first_criterion_uses_espnets_average_without_rewriting_it(exp, caplog):
    """train.loss is the first of ESPnet's default criteria: its average is exact."""
    ave = exp / "train.loss.ave_2best.pth"
    stamp = ave.stat().st_mtime_ns
    with caplog.at_level(logging.INFO):
        out = average_checkpoints(str(exp), ("train", "loss", "min"), None,
                                  str(exp / "model.pth"))
    assert out == ave and ave.stat().st_mtime_ns == stamp
    assert "using the average ESPnet's trainer wrote" in caplog.text
    assert os.readlink(exp / "model.pth") == "train.loss.ave_2best.pth"
    _assert_state_close(load_torch_file(ave), _mean_of_epochs(exp, [1, 2]))


def test_later_criterion_is_averaged_again_because_espnets_is_wrong(exp, caplog):
    """ESPnet's valid.acc average (4th criterion) starts from an already
    averaged state dict; stage 10 replaces it by the exact mean."""
    ave = exp / "valid.acc.ave_2best.pth"
    exact = _mean_of_epochs(exp, [1, 2])
    key = "decoder.output_layer.weight"
    assert (load_torch_file(ave)[key] - exact[key]).abs().max() > 1e-4  # ESPnet's
    with caplog.at_level(logging.INFO):
        out = average_checkpoints(str(exp), ("valid", "acc", "max"), None,
                                  str(exp / "model.pth"))
    assert out == ave
    assert "averaging (no exact, current valid.acc.ave_2best.pth" in caplog.text
    _assert_state_close(load_torch_file(ave), exact)
    assert os.readlink(exp / "valid.acc.ave.pth") == "valid.acc.ave_2best.pth"
    # a rerun averages again (ESPnet's rule says nothing about our file): same result
    average_checkpoints(str(exp), ("valid", "acc", "max"), 2)
    _assert_state_close(load_torch_file(ave), exact)


def test_nbest_one_is_the_best_epoch_link(exp):
    out = average_checkpoints(str(exp), ("valid", "acc", "max"), 1)
    assert os.readlink(out) == os.readlink(exp / "valid.acc.best.pth")
    assert os.readlink(exp / "valid.acc.ave.pth") == "valid.acc.ave_1best.pth"


def test_a_missing_average_is_made(exp, caplog):
    (exp / "train.loss.ave_2best.pth").unlink()
    with caplog.at_level(logging.INFO):
        out = average_checkpoints(str(exp), ("train", "loss", "min"), 2)
    assert "averaging (no exact, current train.loss.ave_2best.pth" in caplog.text
    _assert_state_close(load_torch_file(out), _mean_of_epochs(exp, [2, 1]))


def test_a_truncated_average_is_made_again(exp, caplog):
    truncate(exp / "train.loss.ave_2best.pth", 0.5)
    with caplog.at_level(logging.WARNING):
        out = average_checkpoints(str(exp), ("train", "loss", "min"), 2)
    assert "truncated or corrupt (an interrupted write?)" in caplog.text
    assert caplog.text.rstrip().endswith("averaging again")
    _assert_state_close(load_torch_file(out), _mean_of_epochs(exp, [1, 2]))


def test_a_payload_in_an_epoch_file_is_refused(exp, tmp_path):
    marker = tmp_path / "PAYLOAD_RAN"
    save_with_payload(load_torch_file(exp / "2epoch.pth"), exp / "2epoch.pth", marker)
    with pytest.raises(ValueError, match=r"2epoch.pth: refusing to load this epoch model"):
        average_checkpoints(str(exp), ("valid", "acc", "max"), 2)
    assert not marker.exists()


def test_a_payload_in_the_checkpoint_is_refused(exp, tmp_path):
    marker = tmp_path / "PAYLOAD_RAN"
    save_with_payload(load_torch_file(exp / "checkpoint.pth"), exp / "checkpoint.pth", marker)
    with pytest.raises(ValueError, match=r"checkpoint.pth: refusing to load this checkpoint"):
        average_checkpoints(str(exp))
    assert not marker.exists()


def test_the_sparsity_of_an_average_is_checked_against_the_final_masks(tmp_path, caplog):
    """SET/RigL/GMP/CHASE change their masks: an average of two epochs with
    different masks has nonzeros outside the final masks (the union of the
    supports); a weight regrown at 0 still counts as a zero."""
    from espnet_msrs.bin.average_checkpoints import log_masked_sparsity
    from espnet_msrs.sparsity.mask_file import save_masks

    first = torch.tensor([[1.0, 0.0, 2.0, 0.0]])   # epoch a: active 0, 2
    last = torch.tensor([[0.0, 0.0, 4.0, 0.0]])    # epoch b: active 1 (regrown, still 0), 2
    save_masks({"w": torch.tensor([[False, True, True, False]])}, tmp_path / "mask.pth")
    torch.save({"w": last, "b": torch.ones(2)}, tmp_path / "last.pth")
    torch.save({"w": (first + last) / 2, "b": torch.ones(2)}, tmp_path / "ave.pth")
    with caplog.at_level(logging.INFO):
        assert log_masked_sparsity(tmp_path / "last.pth", tmp_path / "mask.pth") == (0.75, 0)
    assert "sparsity=75.0% nonzero_outside_mask=0 (the final masks of" in caplog.text
    assert ": 50.0%)" in caplog.text and "denser" not in caplog.text
    with caplog.at_level(logging.INFO):
        assert log_masked_sparsity(tmp_path / "ave.pth", tmp_path / "mask.pth") == (0.5, 1)
    assert "is denser than its final masks: 1 weights outside them are nonzero" in caplog.text
    torch.save({"v": last}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match=r"masks weights that .*other.pth does not have, e.g. \['w'\]"):
        log_masked_sparsity(tmp_path / "other.pth", tmp_path / "mask.pth")


def test_the_last_epochs_model_is_linked_and_checked(exp, caplog):
    from espnet_msrs.bin.average_checkpoints import last_epoch_model, main

    out = exp / "valid.acc.ave.pth"
    with caplog.at_level(logging.INFO):
        assert last_epoch_model(str(exp), str(out)) == exp / "2epoch.pth"
    assert os.readlink(out) == "2epoch.pth"
    assert "the last epoch's model:" in caplog.text
    truncate(exp / "2epoch.pth")
    with pytest.raises(ValueError, match="2epoch.pth"):
        main(["--exp_dir", str(exp), "--last_epoch", "true", "--out", str(out)])
