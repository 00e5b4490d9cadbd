"""Tests of the mask file format (mask.pth)."""

import pytest
import torch

from espnet_msrs.sparsity.mask_file import load_mask_metadata, load_masks, save_masks


def test_save_and_load_masks(tmp_path):
    masks = {"a.weight": torch.tensor([[True, False], [False, False]]),
             "b.weight": torch.ones(3, dtype=torch.bool)}
    path = tmp_path / "sub" / "masks.pt"
    save_masks(masks, path, metadata={"epoch": 3})
    loaded = load_masks(path)
    assert list(loaded) == list(masks)
    for k in masks:
        assert torch.equal(loaded[k], masks[k])
    meta = load_mask_metadata(path)
    assert meta["epoch"] == 3 and meta["numel"] == 7 and meta["zeros"] == 3
    assert meta["sparsity"] == pytest.approx(3 / 7)
    with pytest.raises(ValueError, match="bool"):
        save_masks({"a": torch.ones(2)}, tmp_path / "x.pt")
    torch.save({"x": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="other.pt"):
        load_masks(tmp_path / "other.pt")
    with pytest.raises(ValueError, match="missing.pt"):
        load_masks(tmp_path / "missing.pt")


