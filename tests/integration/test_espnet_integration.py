"""espnet_msrs inside ESPnet's own machinery, on the tiny generated corpus.

* espnet2's parser accepts the registered names; ``--print_config`` round-trips;
* espnet2's own ``ASRTask.build_model`` builds a model from a YAML in conf/;
* one epoch of ESPnet's Trainer through the task's ``main`` for the ASR,
  VSR and AVSR tiny configs with dense, MSRS-masked and LR-SMS low-rank
  layers (checkpoints, tensorboard logs, ``loss_att``/``loss_ctc`` stats), and
  decoding of each result with espnet2's ``asr_inference``.

Everything runs in this process (ESPnet's ``main`` functions take ``cmd``).
"""

import io
import math
import sys
from pathlib import Path

import pytest
import soundfile
import torch
import yaml

from espnet_msrs.register import register
from tests.helpers.tiny_corpus import make_tiny_corpus

register()
from espnet2.bin.asr_inference import main as asr_inference_main  # noqa: E402
from espnet2.tasks.asr import ASRTask  # noqa: E402

from espnet_msrs.asr.decoder.transformer_decoder import MSRSTransformerDecoder  # noqa: E402
from espnet_msrs.bin import model_summary  # noqa: E402
from espnet_msrs.asr.encoder.conformer_encoder import MSRSConformerEncoder  # noqa: E402
from espnet_msrs.asr.frontend.av_resnet_frontend import AVResNetFrontend, packed_dim  # noqa: E402
from espnet_msrs.tasks.asr import MSRSASRTask  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "conf" / "tuning"
TINY = {"audio": "train_asr_tiny.yaml", "video": "train_vsr_tiny.yaml", "av": "train_avsr_tiny.yaml"}
CROP = 32  # crop_size of the tiny configs
LINEARS = {
    "dense": [],
    # an MSRS search over the FFN linears (the one selection of --msrs_conf);
    # their mask logits are trained by the second optimizer
    "masked": ["--msrs_conf", "mode=search", "--msrs_conf", "include=feed_forward",
               "--optim2", "adamw",
               "--optim2_conf", "lr=1.0e-3", "--optim2_conf", "weight_decay=0.0"],
    "lowrank": [
        "--encoder_conf", "mhsa_linear=lowrank", "--encoder_conf", "ffn_linear=lowrank",
        "--decoder_conf", "mhsa_linear=lowrank", "--decoder_conf", "ffn_linear=lowrank",
    ],
}


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models gain nothing from intra-op threads, and on a shared 2-core
    machine spinning threads slow these runs down several times."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Tiny corpus + per-modality shape files (``uid T,D`` at 25 fps)."""
    root = tmp_path_factory.mktemp("tiny")
    dirs = make_tiny_corpus(root, sets={"train": 4, "valid": 2, "test": 2})
    for name in ("train", "valid", "test"):
        frames = {}
        for line in (dirs[name] / "wav.scp").read_text().splitlines():
            uid, path = line.split(maxsplit=1)
            frames[uid] = math.ceil(soundfile.info(path).frames / 640)
        for modality in TINY:
            dim = packed_dim(modality, CROP, 640)
            (dirs[name] / f"shape_{modality}").write_text(
                "".join(f"{uid} {t},{dim}\n" for uid, t in sorted(frames.items()))
            )
    return dirs


def data_args(corpus, modality, split, option):
    ddir = corpus[split]
    args = []
    if modality in ("audio", "av"):
        args += [option, f"{ddir}/wav.scp,speech,sound"]
    if modality in ("video", "av"):
        # VSR decoding: asr_inference's data name is "speech" (the preprocessor
        # moves a 3-D "speech" array to "video")
        name = "speech" if modality == "video" and option == "--data_path_and_name_and_type" else "video"
        args += [option, f"{ddir}/video.scp,{name},video"]
    if split != "test":
        args += [option, f"{ddir}/text,text,text"]
    return args


def test_espnet2_parser_accepts_registered_names():
    parser = ASRTask.get_parser()
    args = parser.parse_args(
        ["--frontend", "av_resnet", "--encoder", "msrs_conformer",
         "--decoder", "msrs_transformer", "--preprocessor", "av",
         "--encoder_conf", "mhsa_linear=lowrank", "--frontend_conf", "modality=video"]
    )
    assert (args.frontend, args.encoder, args.decoder, args.preprocessor) == (
        "av_resnet", "msrs_conformer", "msrs_transformer", "av")
    assert args.encoder_conf == {"mhsa_linear": "lowrank"}
    with pytest.raises(SystemExit):
        parser.parse_args(["--encoder", "msrs_conformer_typo"])


@pytest.mark.parametrize("modality", list(TINY))
def test_print_config_round_trips(modality, tmp_path, monkeypatch):
    def printed(*argv):
        monkeypatch.setattr(sys, "argv", ["asr_train", *argv])
        buffer = io.StringIO()
        MSRSASRTask.print_config(file=buffer)
        return buffer.getvalue()

    first = printed("--config", str(CONF / TINY[modality]),
                    "--encoder_conf", "ffn_linear=lowrank", "--msrs_conf", "epsilon=0.02")
    config = yaml.safe_load(first)
    assert config["encoder"] == "msrs_conformer" and config["decoder"] == "msrs_transformer"
    # our options and espnet2's (from the merged signature) are both listed
    assert config["encoder_conf"]["ffn_linear"] == "lowrank"
    assert config["encoder_conf"]["layer_scale_init"] == 1e-4
    assert config["encoder_conf"]["macaron_style"] is True
    assert "src_attention_dropout_rate" in config["decoder_conf"]
    assert config["frontend_conf"]["modality"] == modality
    assert config["msrs_conf"] == {"epsilon": 0.02}
    path = tmp_path / "printed.yaml"
    path.write_text(first)
    second = printed("--config", str(path))
    assert yaml.safe_load(second) == config


def test_espnet2_build_model_from_conf_yaml():
    torch.manual_seed(0)
    args = ASRTask.get_parser().parse_args(["--config", str(CONF / TINY["av"])])
    args.token_list = ["<blank>", "<unk>", "A", "B", "C", "<sos/eos>"]
    model = ASRTask.build_model(args)
    assert isinstance(model.frontend, AVResNetFrontend)
    assert isinstance(model.encoder, MSRSConformerEncoder)
    assert isinstance(model.decoder, MSRSTransformerDecoder)
    assert model.normalize is None and model.ctc_weight == 0.1
    speech = torch.randn(2, 5, packed_dim("av", CROP, 640))
    text = torch.tensor([[2, 3, 4], [3, 2, -1]])
    loss, stats, weight = model(
        speech=speech, speech_lengths=torch.tensor([5, 4]),
        text=text, text_lengths=torch.tensor([3, 2]),
    )
    assert torch.isfinite(loss) and int(weight) == 2
    assert {"loss_att", "loss_ctc", "acc"} <= set(stats)
    loss.backward()
    assert model.frontend.video_frontend.stem_conv.weight.grad is not None


@pytest.mark.parametrize("linear", list(LINEARS))
@pytest.mark.parametrize("modality", list(TINY))
def test_train_one_epoch_and_decode(modality, linear, corpus, tmp_path):
    exp = tmp_path / "exp"
    MSRSASRTask.main(
        cmd=[
            "--config", str(CONF / TINY[modality]),
            "--output_dir", str(exp),
            "--token_list", str(corpus["token_list"]),
            "--token_type", "char",
            "--ngpu", "0",
            "--use_matplotlib", "false",
            *data_args(corpus, modality, "train", "--train_data_path_and_name_and_type"),
            *data_args(corpus, modality, "valid", "--valid_data_path_and_name_and_type"),
            "--train_shape_file", str(corpus["train"] / f"shape_{modality}"),
            "--valid_shape_file", str(corpus["valid"] / f"shape_{modality}"),
            *LINEARS[linear],
        ]
    )
    for name in ("config.yaml", "checkpoint.pth", "1epoch.pth", "valid.acc.best.pth"):
        assert (exp / name).is_file(), name
    for split in ("train", "valid"):
        assert list((exp / "tensorboard" / split).glob("events.out.tfevents.*")), split
    checkpoint = torch.load(exp / "checkpoint.pth", map_location="cpu", weights_only=False)
    stats = checkpoint["reporter"]["stats"][1]
    for split in ("train", "valid"):
        assert {"loss_att", "loss_ctc", "acc"} <= set(stats[split]), split
        assert math.isfinite(float(stats[split]["loss_att"]))
    state = torch.load(exp / "valid.acc.best.pth", map_location="cpu")
    marker = {"dense": None, "masked": "feed_forward.w_1.mask_logits",
              "lowrank": "self_attn.linear_pos.lowrank_u.weight"}[linear]
    assert any(marker in k for k in state) if marker else not any(
        "mask_logits" in k or "lowrank_" in k for k in state)
    # the experiment's own config.yaml and checkpoint summarise
    summary = io.StringIO()
    total = model_summary.summarize(exp / "config.yaml", checkpoint=exp / "valid.acc.best.pth", out=summary)
    names = [n for n, _ in model_summary.build_model(exp / "config.yaml")[0].named_parameters()]
    assert total == sum(state[n].numel() for n in names if not n.endswith("mask_logits"))
    assert summary.getvalue().rstrip().endswith(f"total_params: {total}")
    frontend_parts = {k.split(".")[1] for k in state if k.startswith("frontend.")}
    assert frontend_parts == {"audio": {"audio_frontend"}, "video": {"video_frontend"},
                              "av": {"audio_frontend", "video_frontend", "fusion"}}[modality]

    decode = tmp_path / "decode"
    asr_inference_main(
        [
            "--asr_train_config", str(exp / "config.yaml"),
            "--asr_model_file", str(exp / "valid.acc.best.pth"),
            "--output_dir", str(decode),
            "--ngpu", "0",
            "--beam_size", "1",
            "--maxlenratio", "0.5",
            "--allow_variable_data_keys", "true",
            *data_args(corpus, modality, "test", "--data_path_and_name_and_type"),
        ]
    )
    hyps = (decode / "1best_recog" / "text").read_text().splitlines()
    test_ids = sorted(line.split()[0] for line in (corpus["test"] / "text").read_text().splitlines())
    assert sorted(line.split()[0] for line in hyps) == test_ids
