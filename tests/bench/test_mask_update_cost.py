"""bench/mask_update_cost.py on a tiny model: every method's timed update
step really updates its masks, the figures are computed from the samples,
and the JSON is written. No speed is asserted."""

import json
import statistics

import pytest

from bench import mask_update_cost


def test_each_method_is_measured(tmp_path):
    out = tmp_path / "cost.json"
    result = mask_update_cost.main([
        "--output_size", "16", "--attention_heads", "2", "--linear_units", "32",
        "--encoder_blocks", "1", "--decoder_blocks", "1", "--input_size", "8",
        "--vocab_size", "10", "--batch_size", "2", "--frames", "12", "--tokens", "3",
        "--repeats", "2", "--update_interval", "3", "--out", str(out),
    ])
    written = json.loads(out.read_text())
    assert set(written["methods"]) == {"set", "rigl", "gmp", "chase"}
    for method, entry in written["methods"].items():
        assert entry["update_interval"] == 3
        assert len(entry["step_s"]) == len(entry["update_step_s"]) == 2
        p = statistics.median(entry["step_s"])
        u = statistics.median(entry["update_step_s"])
        assert entry["update_cost_s"] == pytest.approx(u - p)
        assert entry["overhead"] == pytest.approx((u - p) / (3 * p))
        assert 0.0 < entry["sparsity"] < 1.0
    assert written["methods"]["rigl"]["sparsity"] == pytest.approx(0.4, abs=1e-3)
    assert result["methods"].keys() == written["methods"].keys()
