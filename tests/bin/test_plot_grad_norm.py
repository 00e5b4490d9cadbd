"""Tests of ``python -m espnet_msrs.bin.plot_grad_norm`` (MSRS Fig. 1 plot)."""

import json
import math

import pytest

from espnet_msrs.bin.plot_grad_norm import main, parse_run, read_train_log

PNG = b"\x89PNG\r\n\x1a\n"


def _tensorboard_run(exp, values, key="grad_norm_enc0_ffn", epoch_end=None):
    """Events like ESPnet's train writer: per-step values, and after the
    epoch's last step an ``iter_epoch`` marker plus the epoch means."""
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(exp / "tensorboard" / "train"))
    for step, value in values:
        writer.add_scalar(key, value, step)
        writer.add_scalar("grad_norm", 10 * value, step)
        if step == epoch_end:
            writer.add_scalar("iter_epoch", 1, step)
            writer.add_scalar(key, -1.0, step)  # the epoch mean
    writer.close()


def _log_run(exp):
    """An ESPnet train.log: 2 epochs of 4 batches, log_interval 2."""
    exp.mkdir(parents=True)
    lines = ["[host] 2024-01-01 (trainer:336) INFO: 1/2epoch started"]
    value = 1.0
    for epoch in (1, 2):
        for end in (2, 4):
            lines.append(
                f"[host] 2024-01-01 (trainer:800) INFO: {epoch}epoch:train:"
                f"{end - 1}-{end}batch: iter_time=1.234e-03, loss=12.500acc=0.1, "
                f"grad_norm_enc0_ffn={value:.3f}, grad_norm=5.000, clip=0.000"
            )
            value /= 2
        lines.append(f"[host] 2024-01-01 (trainer:394) INFO: {epoch}epoch results: "
                     "[train] loss=1.0, grad_norm_enc0_ffn=0.3 [valid] loss=2.0")
    # a resumed epoch 2 rewrites its first interval
    lines.append("[host] (trainer:800) INFO: 2epoch:train:1-2batch: "
                 "grad_norm_enc0_ffn=nan, grad_norm=5.0")
    (exp / "train.log").write_text("\n".join(lines) + "\n")
    return exp


def test_log_parser_counts_global_steps(tmp_path):
    steps, values = read_train_log(_log_run(tmp_path / "b") / "train.log",
                                   "grad_norm_enc0_ffn")
    assert steps == [2, 4, 6, 8]
    assert values[:2] == [1.0, 0.5] and values[3] == 0.125
    assert math.isnan(values[2])  # the resumed interval replaced the first one
    # ESPnet sometimes drops the ", " between fields ("loss=12.500acc=0.1")
    assert read_train_log(tmp_path / "b" / "train.log", "acc")[1] == [0.1] * 4


@pytest.mark.parametrize("layout", ["side_by_side", "overlay"])
def test_cli_writes_png_and_json_from_tensorboard_and_log(tmp_path, layout):
    dense = tmp_path / "exp" / "dense"
    _tensorboard_run(dense, [(1, 3.0), (2, 30.0), (3, 300.0)], epoch_end=2)
    msrs = _log_run(tmp_path / "exp" / "msrs")
    out = tmp_path / "fig1.png"
    result = main(["--run", f"no clip={dense}", "--run", str(msrs / "train.log"),
                   "--output", str(out), "--layout", layout, "--clip", "5"])
    assert out.read_bytes()[:8] == PNG
    data = json.loads(out.with_suffix(".json").read_text())
    assert data == result
    assert data["key"] == "grad_norm_enc0_ffn" and data["layout"] == layout
    first, second = data["runs"]
    assert first["label"] == "no clip" and first["format"] == "tensorboard"
    assert first["steps"] == [1, 2, 3]
    assert first["values"] == pytest.approx([3.0, 30.0, 300.0])
    assert second["label"] == "msrs" and second["format"] == "log"
    assert second["steps"] == [2, 4, 6, 8]
    assert second["values"][2] is None  # NaN -> null, strict JSON


def test_cli_other_key_and_json_path(tmp_path):
    exp = tmp_path / "run"
    _tensorboard_run(exp, [(5, 1.0), (10, 2.0)])
    out_json = tmp_path / "data.json"
    result = main(["--run", str(exp), "--key", "grad_norm", "--output",
                   str(tmp_path / "total.png"), "--json", str(out_json),
                   "--linear_y"])
    assert json.loads(out_json.read_text())["runs"][0]["values"] == [10.0, 20.0]
    assert result["runs"][0]["label"] == "run"


def test_parse_run_labels(tmp_path):
    assert parse_run("a=b/c") == ("a", tmp_path.__class__("b/c"))
    assert parse_run("exp/asr_msrs")[0] == "asr_msrs"
    assert parse_run("exp/asr_msrs/train.log")[0] == "asr_msrs"


def test_cli_errors_name_the_run(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty.*no tensorboard"):
        main(["--run", str(tmp_path / "empty"), "--output", str(tmp_path / "x.png")])
    exp = tmp_path / "other"
    _tensorboard_run(exp, [(1, 1.0)], key="something_else")
    with pytest.raises(ValueError, match="'other': no 'grad_norm_enc0_ffn'"):
        main(["--run", str(exp), "--output", str(tmp_path / "x.png")])
