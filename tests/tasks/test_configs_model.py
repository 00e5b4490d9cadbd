"""Every training config of the package selects ``model: msrs`` (or leaves
the task's default): sparse-training modes and gradient-norm reports need it,
and a config added with ESPnet's ``model: espnet`` would fail only when its
recipe reaches stage 8/9."""

from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def _training_configs():
    """Each training YAML once (recipes symlink conf/tuning), by real path."""
    paths = {
        p.resolve()
        for p in [*REPO.glob("conf/**/*.yaml"), *REPO.glob("egs2/*/*/conf/**/*.yaml")]
        if "/exp/" not in str(p)
    }
    return sorted(p for p in paths
                  if "encoder" in (yaml.safe_load(p.read_text()) or {}))


CONFIGS = _training_configs()


def test_the_configs_are_found():
    names = {p.name for p in CONFIGS}
    assert {"train_vsr_large_msrs_search.yaml", "search_avsr_demo.yaml"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(REPO)))
def test_training_configs_use_the_msrs_model(path):
    conf = yaml.safe_load(path.read_text())
    assert conf.get("model", "msrs") == "msrs", (
        f"{path.relative_to(REPO)}: model: {conf['model']} (use model: msrs, "
        "espnet2's ASR model that owns the sparse-training method)"
    )
