"""Recipe tools of stages 10, 12 and 13: checkpoint averaging, the RESULTS.md
facts and the packed-model check (the data-preparation tools are tested in
tests/data_prep and tests/utils)."""

import os

import pytest
import torch

from espnet_msrs.bin.average_checkpoints import average_checkpoints
from espnet_msrs.bin.make_results import model_facts, split_set_name


# ----------------------------------------------------------------- averaging
def test_average_checkpoints_uses_the_reporter_ranking(tmp_path):
    from espnet2.train.reporter import Reporter

    exp = tmp_path / "train"
    exp.mkdir()
    reporter = Reporter()
    accs = {1: 0.5, 2: 0.9, 3: 0.7, 4: 0.8}
    for epoch, acc in accs.items():
        reporter.set_epoch(epoch)
        with reporter.observe("valid") as sub:
            sub.register({"acc": acc})
            sub.next()
        if epoch != 1:  # ESPnet deleted the worst epoch's file
            torch.save({"w": torch.full((2,), float(epoch)),
                        "bn.num_batches_tracked": torch.tensor(epoch)},
                       exp / f"{epoch}epoch.pth")
    torch.save({"reporter": reporter.state_dict()}, exp / "checkpoint.pth")
    (exp / "config.yaml").write_text("keep_nbest_models: 3\n")
    out = average_checkpoints(str(exp), ("valid", "acc", "max"), None,
                              str(exp / "valid.acc.ave.pth"))
    assert out.name == "valid.acc.ave_3best.pth"
    avg = torch.load(exp / "valid.acc.ave.pth")  # the link follows the average
    assert torch.allclose(avg["w"], torch.full((2,), (2 + 4 + 3) / 3))
    assert int(avg["bn.num_batches_tracked"]) == 9  # ints are accumulated (ESPnet)
    assert os.path.islink(exp / "valid.acc.ave.pth")
    # asking for more epochs than kept averages what is on disk
    out = average_checkpoints(str(exp), ("valid", "acc", "max"), 4)
    assert out.name == "valid.acc.ave_3best.pth"
    with pytest.raises(ValueError, match="not reported"):
        average_checkpoints(str(exp), ("valid", "wer", "min"), 1)


# ------------------------------------------------------------------- results
def test_model_facts_counts_zeros_masks_and_ranks(tmp_path):
    from espnet_msrs.sparsity.mask_file import save_masks

    w = torch.ones(4, 5)
    w[:2] = 0.0  # 10 zeros (pruned by the mask)
    state = {
        "encoder.encoders.0.feed_forward.w_1.weight": w,
        "encoder.encoders.0.feed_forward.w_1.bias": torch.ones(4),
        "encoder.encoders.0.self_attn.linear_q.lowrank_v.weight": torch.ones(3, 8),
        "encoder.encoders.0.self_attn.linear_q.lowrank_u.weight": torch.ones(8, 3),
        "encoder.encoders.1.feed_forward.w_1.lowrank_v.weight": torch.ones(2, 8),
        "frontend.bn.running_mean": torch.zeros(7),  # buffers are not parameters
        "frontend.bn.num_batches_tracked": torch.tensor(3),
    }
    torch.save(state, tmp_path / "m.pth")
    mask = {"encoder.encoders.0.feed_forward.w_1.weight": w != 0}
    save_masks(mask, tmp_path / "mask.pth")
    facts = model_facts(tmp_path / "m.pth", tmp_path / "mask.pth")
    assert facts["n_params"] == 20 + 4 + 24 + 24 + 16
    assert facts["n_nonzero"] == facts["n_params"] - 10
    assert facts["sparsity_prunable"] == pytest.approx(0.5)
    assert facts["sparsity_all"] == pytest.approx(10 / 88)
    assert facts["ranks"] == {"mhsa": [3], "ffn": [2]}
    assert model_facts(tmp_path / "m.pth")["sparsity_prunable"] is None


def test_split_set_name():
    assert split_set_name("test_snr-7.5") == ("test", -7.5)
    assert split_set_name("test_snr12.5", ["test"]) == ("test", 12.5)
    assert split_set_name("test") == ("test", "clean")
    assert split_set_name("dev_snr5", ["test"]) == ("dev_snr5", "clean")


# ------------------------------------------------------------- packed model
def test_check_packed_model_refuses_escaping_members(tmp_path):
    import zipfile

    from espnet_msrs.bin.check_packed_model import check_packed_model

    bad = tmp_path / "model.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("meta.yaml", "files: {asr_model_file: m.pth}\nyaml_files: {}\n")
        zf.writestr("../../escaped.txt", "owned")
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match="escaped.txt"):
        check_packed_model(str(bad), str(tmp_path), "audio", cache_dir=str(cache))
    assert not (tmp_path / "escaped.txt").exists()
    assert not any(cache.rglob("*")) if cache.exists() else True
