"""Tests of ``python -m espnet_msrs.bin.model_summary`` and of the totals of
the paper configs in conf/ (MSRS Tables 1/3, LR-SMS Tables I-III)."""

import io
import re
from pathlib import Path

import pytest
import torch
import yaml

from espnet_msrs.bin import model_summary
from espnet_msrs.bin.model_summary import (
    build_model,
    is_training_config,
    main,
    param_group,
    summarize,
)

REPO = Path(__file__).resolve().parents[2]
TUNING = sorted((REPO / "conf" / "tuning").glob("*.yaml"))
RECIPE_CONFS = sorted(
    p
    for p in (REPO / "egs2").glob("*/*/conf/**/*.yaml")
    if is_training_config(p)
)
#: Paper totals (M) of the base architectures (DESIGN §3); variants that keep
#: the architecture (LayerScale adds < 0.1 M, MSRS phases add nothing) share them.
PAPER_TOTALS = {
    "train_vsr_small": 56,
    "train_vsr_large": 250,
    "train_avsr": 268,
    "train_avsr_vlarge": 703,
    "train_asr": 243,
    # LR-SMS Table I (uniform alpha) and Table II (linear layer-wise rank)
    "train_asr_lr_all_a025": 113,
    "train_asr_lr_sms_m010-020_f020-040": 107,
}
_CLAIM = re.compile(r"\(paper: ([\d.]+) M parameters\)|; ([\d.]+) M parameters")


def paper_total(path: Path) -> float:
    """The paper's total for a config: PAPER_TOTALS, else the header's claim."""
    if path.stem in PAPER_TOTALS:
        return PAPER_TOTALS[path.stem]
    header = "".join(line for line in path.read_text().splitlines(True) if line.startswith("#"))
    found = _CLAIM.findall(header)
    assert found, f"{path.name}: no '(paper: N M parameters)' in its header"
    variant = [a for a, _ in found if a]  # a variant's own total wins
    return float(variant[0] if variant else found[0][1])


def run_summary(*argv: str) -> str:
    out = io.StringIO()
    args = model_summary.get_parser().parse_args(list(argv))
    summarize(args.config, args.vocab_size, args.checkpoint, out=out)
    return out.getvalue()


def total_of(text: str) -> int:
    last = text.strip().splitlines()[-1]
    assert last.startswith("total_params: "), last
    return int(last.split(":")[1])


@pytest.mark.parametrize("config", TUNING, ids=[p.stem for p in TUNING])
def test_every_tuning_config_summarises(config):
    first_line = config.read_text().splitlines()[0]
    assert first_line.startswith("# ") and re.search(r"\b(A100|CPU)\b", first_line)
    text = run_summary("--config", str(config))
    total = total_of(text)
    assert "parameters per group:" in text
    groups = dict(
        (m.group(1), int(m.group(2).replace(",", "")))
        for m in re.finditer(r"^  (\S+)\s+([\d,]+)\s+[\d.]+ %$", text, re.M)
    )
    assert sum(groups.values()) == total
    assert {"output.decoder", "output.ctc", "encoder.block0", "decoder.block0"} <= set(groups)
    if "tiny" in config.stem:
        assert 1e4 < total < 2e6
        return
    if "demo" in config.stem:  # the demo's toy models (with a 5000-token vocabulary here)
        assert 1e6 < total < 5e6
        return
    paper = paper_total(config)
    assert abs(total / 1e6 - paper) <= 0.03 * paper, (config.name, total, paper)


@pytest.mark.parametrize("config", RECIPE_CONFS, ids=[str(p.relative_to(REPO)) for p in RECIPE_CONFS])
def test_every_recipe_training_config_summarises(config):
    assert total_of(run_summary("--config", str(config))) > 0


def test_groups_ranks_and_meta_build_of_an_lr_sms_config():
    config = REPO / "conf/tuning/train_asr_lr_sms_m010-020_f020-040.yaml"
    model, args, source = build_model(config)
    assert len(args.token_list) == 5000 and source.startswith("default")
    weights = [p for n, p in model.named_parameters() if n.endswith("weight")]
    assert {p.device.type for p in weights} == {"meta"}
    text = run_summary("--config", str(config))
    assert "factorised layers (LR-SMS): 168" in text  # 12 x 9 + 6 x 10
    # eq. 2: block 0 of the encoder, MHSA alpha_i = 0.1 -> int(76.8) = 76;
    # decoder block 5, FFN alpha = 0.2 + 5 * 0.2 / 6 -> int(0.3667 * 768) = 281
    assert "encoder.encoders.0.self_attn.linear_pos mhsa 768x768 rank=76" in text
    assert "decoder.decoders.5.feed_forward.w_2 ffn 768x3072 rank=281" in text
    assert re.search(r"^  frontend.audio\s+3,848,576 ", text, re.M)
    assert re.search(r"^  output.ctc\s+3,845,000 ", text, re.M)  # 768 x 5000 + 5000


def test_param_groups():
    assert param_group("frontend.video_frontend.trunk.layer1.0.conv1.weight") == "frontend.video"
    assert param_group("frontend.audio_frontend.stem_conv.weight") == "frontend.audio"
    assert param_group("frontend.fusion.fc1.weight") == "frontend.fusion"
    assert param_group("encoder.embed.0.weight") == "encoder.input"
    assert param_group("encoder.encoders.11.self_attn.linear_q.lowrank_u.weight") == "encoder.block11"
    assert param_group("encoder.after_norm.weight") == "encoder.other"
    assert param_group("decoder.decoders.0.src_attn.linear_k.weight") == "decoder.block0"
    assert param_group("decoder.embed.0.weight") == "output.decoder"
    assert param_group("decoder.output_layer.bias") == "output.decoder"
    assert param_group("ctc.ctc_lo.weight") == "output.ctc"


def test_vocab_size_from_option_and_token_list(tmp_path):
    conf = yaml.safe_load((REPO / "conf/tuning/train_asr_tiny.yaml").read_text())
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("\n".join(["<blank>", "<unk>", "A", "B", "<sos/eos>"]) + "\n")
    conf["token_list"] = str(tokens)
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump(conf))
    text5 = run_summary("--config", str(config))
    assert f"vocab_size: 5 (token_list file {tokens})" in text5
    text9 = run_summary("--config", str(config), "--vocab_size", "9")
    # output layer (32 x V + V) and CTC (32 x V + V) and embedding (V x 32)
    assert total_of(text9) - total_of(text5) == 4 * (3 * 32 + 2)
    conf["token_list"] = ["<blank>", "<unk>", "x", "<sos/eos>"]
    config.write_text(yaml.safe_dump(conf))
    assert "vocab_size: 4 (token_list in the config)" in run_summary("--config", str(config))
    conf["token_list"] = "data/no_such_tokens.txt"
    config.write_text(yaml.safe_dump(conf))
    assert "vocab_size: 5000 (default: token_list file data/no_such_tokens.txt not found" in run_summary(
        "--config", str(config)
    )


def _tiny_model(tmp_path, modality="video", **encoder_conf):
    name = {"audio": "asr", "video": "vsr", "av": "avsr"}[modality]
    conf = yaml.safe_load((REPO / f"conf/tuning/train_{name}_tiny.yaml").read_text())
    conf["encoder_conf"].update(encoder_conf)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(conf))
    model, _, _ = build_model(config, vocab_size=10, device="cpu")
    return config, model


def test_checkpoint_sparsity_of_exact_zeros(tmp_path):
    config, model = _tiny_model(tmp_path, "av", ffn_linear="lowrank")
    state = model.state_dict()
    w = "encoder.encoders.0.feed_forward.w_1.lowrank_u.weight"
    state[w] = state[w].clone()
    state[w].view(-1)[: state[w].numel() // 2] = 0.0
    conv = "frontend.video_frontend.stem_conv.weight"
    state[conv] = torch.zeros_like(state[conv])
    path = tmp_path / "valid.acc.ave.pth"
    torch.save(state, path)
    text = run_summary("--config", str(config), "--vocab_size", "10", "--checkpoint", str(path))
    assert "(exact zeros of the weights)" in text
    rows = {line.split()[0]: line.split() for line in text.splitlines() if line[:1].isalpha()}
    zeros = state[w].numel() // 2
    assert int(rows["encoder.block0"][2].replace(",", "")) == zeros
    assert int(rows["frontend"][2].replace(",", "")) == state[conv].numel()
    assert total_of(text) == sum(p.numel() for p in model.parameters())


def test_checkpoint_of_a_mask_search_uses_binary_masks(tmp_path):
    from espnet_msrs.sparsity.selection import apply_masks

    config, model = _tiny_model(tmp_path, "video")
    apply_masks(model, include=[r"^encoder\.encoders\.1\."])
    state = model.state_dict()
    negative = 0
    for key in list(state):
        if key.endswith("mask_logits"):
            state[key] = state[key].clone()
            state[key].view(-1)[::3] = -1.0
            negative += int((state[key] < 0).sum())  # eq. 3 starts tiny θ negative too
    state["msrs_controller._extra_state"] = {"history": [0.0], "epochs": [0]}
    path = tmp_path / "checkpoint.pth"
    torch.save({"model": state, "optimizers": []}, path)
    text = run_summary("--config", str(config), "--vocab_size", "10", "--checkpoint", str(path))
    assert "(binary masks 1[phi >= 0])" in text
    total_row = [line for line in text.splitlines() if line.startswith("total ")][0]
    assert int(total_row.split()[2].replace(",", "")) == negative
    # mask logits are training state: not in the total
    assert total_of(text) == sum(
        p.numel() for n, p in model.named_parameters() if not n.endswith("mask_logits")
    )


def test_lowrank_layers_build_on_meta_like_on_cpu(tmp_path):
    # MSRS masks are not part of a config's model (--msrs_conf applies them to
    # a training run): a config builds plain or low-rank layers only.
    config, cpu_model = _tiny_model(tmp_path, "audio", ffn_linear="lowrank", mhsa_linear="lowrank")
    meta_model, _, _ = build_model(config, vocab_size=10)
    assert [(n, p.shape) for n, p in meta_model.named_parameters()] == [
        (n, p.shape) for n, p in cpu_model.named_parameters()
    ]
    on_cpu = {n for n, p in meta_model.named_parameters() if p.device.type != "meta"}
    # ESPnet's RelPositionMultiHeadedAttention allocates pos_bias_u/v with the
    # legacy torch.Tensor(h, d_k) constructor, which ignores the device context.
    assert on_cpu and all(n.endswith(("pos_bias_u", "pos_bias_v")) for n in on_cpu)
    text = run_summary("--config", str(config), "--vocab_size", "10")
    assert "mask_logits" not in text
    assert total_of(text) == sum(p.numel() for p in cpu_model.parameters())


def test_main_prints_total_last(tmp_path, capsys):
    config = REPO / "conf/tuning/train_vsr_tiny.yaml"
    total = main(["--config", str(config), "--vocab_size", "10"])
    out = capsys.readouterr().out
    assert out.rstrip().splitlines()[-1] == f"total_params: {total}"


def test_bad_inputs_raise_value_error(tmp_path):
    with pytest.raises(ValueError, match=r"--config .*missing.yaml: no such file"):
        run_summary("--config", str(tmp_path / "missing.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("encoder: msrs_conformer\nencoder_confs: {}\n")
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['encoder_confs'\]"):
        run_summary("--config", str(bad))
    config, model = _tiny_model(tmp_path, "video")
    state = model.state_dict()
    state.pop("ctc.ctc_lo.bias")
    path = tmp_path / "model.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"--checkpoint .*model.pth does not fit.*missing=\['ctc.ctc_lo.bias'\]"):
        run_summary("--config", str(config), "--vocab_size", "10", "--checkpoint", str(path))
    with pytest.raises(ValueError, match=r"does not fit.*shape mismatch"):
        run_summary("--config", str(config), "--vocab_size", "12", "--checkpoint", str(path))


def test_decode_configs_are_not_training_configs(tmp_path):
    decode = tmp_path / "decode_asr.yaml"
    decode.write_text("beam_size: 10\nctc_weight: 0.1\n")
    assert not is_training_config(decode)
    assert is_training_config(REPO / "conf/tuning/train_asr.yaml")


def test_checkpoint_with_a_payload_is_refused_and_never_runs(tmp_path):
    from tests.helpers.micro_model import save_with_payload

    config, model = _tiny_model(tmp_path, "audio")
    marker = tmp_path / "PAYLOAD_RAN"
    path = save_with_payload(model.state_dict(), tmp_path / "model.pth", marker)
    with pytest.raises(ValueError, match=r"model.pth: refusing to load this --checkpoint"):
        run_summary("--config", str(config), "--vocab_size", "10", "--checkpoint", str(path))
    assert not marker.exists()
    truncated = tmp_path / "truncated.pth"
    torch.save(model.state_dict(), truncated)
    truncated.write_bytes(truncated.read_bytes()[:100])
    with pytest.raises(ValueError, match=r"truncated.pth: --checkpoint is truncated"):
        run_summary("--config", str(config), "--vocab_size", "10", "--checkpoint", str(truncated))
