"""Tests of --msrs_conf: one dict -> method + selection."""

import pytest
import torch

from espnet_msrs.sparsity.baselines import RigL
from espnet_msrs.sparsity.fixed_masks import FixedMasks
from espnet_msrs.sparsity.mask_file import save_masks
from espnet_msrs.sparsity.masked_training import MaskedTraining
from espnet_msrs.sparsity.method_choices import MODES, build_sparse_method
from espnet_msrs.sparsity.msrs_search import MSRSSearch


def test_msrs_conf_builds_the_method_with_coercion_and_errors(tmp_path):
    method, selection = build_sparse_method(
        {"mode": "search", "mask_penalty": "1e-4", "min_search_epochs": "3",
         "include": "enc"}
    )
    assert isinstance(method, MSRSSearch)
    assert method.mask_penalty == 1e-4 and method.min_search_epochs == 3
    assert method.epsilon == 0.01 and method.penalty_mode == "loss"
    assert selection.include == ("enc",) and selection.exclude == ()
    assert build_sparse_method({})[0] is None
    assert build_sparse_method(None)[0] is None
    assert set(MODES) >= {"none", "search", "sparse", "grad_masked", "set", "rigl",
                          "gmp", "chase"}
    with pytest.raises(ValueError, match=r"\['lambda'\] are not options of mode=search"):
        build_sparse_method({"mode": "search", "lambda": 1.0})
    with pytest.raises(ValueError, match="msrs_conf.mode='prune'; allowed"):
        build_sparse_method({"mode": "prune"})
    with pytest.raises(ValueError, match="mode=sparse needs msrs_conf.mask_file"):
        build_sparse_method({"mode": "sparse"})
    with pytest.raises(ValueError, match="msrs_conf.rho='x' is not a number"):
        build_sparse_method({"mode": "search", "rho": "x"})
    with pytest.raises(ValueError, match="need a sparse-training mode"):
        build_sparse_method({"epsilon": 0.1})
    with pytest.raises(ValueError, match="penalty_mode='eq5'"):
        build_sparse_method({"mode": "search", "penalty_mode": "eq5"})
    with pytest.raises(ValueError, match="msrs_conf.mask_file: .*missing.pth: mask file not found"):
        build_sparse_method({"mode": "sparse", "mask_file": str(tmp_path / "missing.pth")})


def test_retraining_and_baseline_modes_build_masked_training(tmp_path):
    path = tmp_path / "mask.pth"
    save_masks({"0.weight": torch.ones(2, 2, dtype=torch.bool)}, path)
    for mode, zero_weights in (("sparse", True), ("grad_masked", False)):
        method, _ = build_sparse_method({"mode": mode, "mask_file": str(path)})
        assert isinstance(method, MaskedTraining) and method.name == mode
        assert isinstance(method.strategy, FixedMasks)
        assert method.zero_weights is zero_weights
        assert not method.needs_steps_per_epoch
    method, selection = build_sparse_method(
        {"mode": "rigl", "sparsity": "0.4", "update_interval": "10",
         "exclude": ["output"]}, seed=7
    )
    assert isinstance(method.strategy, RigL) and method.name == "rigl"
    assert method.strategy.sparsity == 0.4 and method.strategy.update_interval == 10
    assert method.strategy.seed == 7  # ESPnet's --seed unless msrs_conf.seed
    assert method.needs_steps_per_epoch and selection.exclude == ("output",)
    method, _ = build_sparse_method({"mode": "set", "sparsity": 0.5, "seed": 3}, seed=7)
    assert method.strategy.seed == 3
    with pytest.raises(ValueError, match="mask_file.* not options of mode=rigl"):
        build_sparse_method({"mode": "rigl", "sparsity": 0.4, "mask_file": "x"})
