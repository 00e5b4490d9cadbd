"""Tests of MSRSESPnetModel (``model: msrs``): espnet2's ASR model that owns
the run's sparse-training method and gradient monitor."""

import pytest
import torch

from espnet_msrs.register import register

register()
from espnet2.asr.espnet_model import ESPnetASRModel  # noqa: E402
from espnet2.tasks.asr import ASRTask  # noqa: E402

from espnet_msrs.asr.espnet_model import MSRSESPnetModel  # noqa: E402
from espnet_msrs.sparsity.msrs_search import MSRSSearch  # noqa: E402
from espnet_msrs.tasks.asr import MSRSASRTask  # noqa: E402

TOKENS = ["<blank>", "<unk>", "a", "b", "c", "<sos/eos>"]
ARGS = [
    "--input_size", "8",
    "--normalize", "none",
    "--encoder", "msrs_conformer",
    "--encoder_conf", "output_size=16", "--encoder_conf", "attention_heads=2",
    "--encoder_conf", "linear_units=16", "--encoder_conf", "num_blocks=1",
    "--encoder_conf", "input_layer=linear", "--encoder_conf", "macaron_style=true",
    "--decoder", "msrs_transformer",
    "--decoder_conf", "attention_heads=2", "--decoder_conf", "linear_units=16",
    "--decoder_conf", "num_blocks=1",
    "--model_conf", "ctc_weight=0.3",
    "--seed", "0",
]


def build(task=MSRSASRTask, *extra):
    args = task.get_parser().parse_args([*ARGS, *extra])
    args.token_list = list(TOKENS)
    torch.manual_seed(0)
    return task.build_model(args)


def batch():
    gen = torch.Generator().manual_seed(1)
    return dict(
        speech=torch.randn(2, 9, 8, generator=gen),
        speech_lengths=torch.tensor([9, 6]),
        text=torch.tensor([[2, 3, 4], [3, 2, -1]]),
        text_lengths=torch.tensor([3, 2]),
    )


def test_default_model_is_espnets_with_the_same_state_and_outputs():
    model = build(MSRSASRTask, "--grad_norm_params", "{}")
    assert type(model) is MSRSESPnetModel and isinstance(model, ESPnetASRModel)
    assert model.sparse_method is None and model.grad_norm_monitor is None
    plain = build(ASRTask, "--model", "espnet")
    assert type(plain) is ESPnetASRModel
    assert list(model.state_dict()) == list(plain.state_dict())
    plain.load_state_dict(model.state_dict())
    model.eval(), plain.eval()
    loss, stats, weight = model(**batch())
    ref_loss, ref_stats, ref_weight = plain(**batch())
    assert torch.equal(loss, ref_loss) and torch.equal(weight, ref_weight)
    assert stats.keys() == ref_stats.keys()


def test_search_adds_lambda_sum_phi_and_reports_its_stats():
    model = build(MSRSASRTask, "--msrs_conf", "mode=search",
                  "--msrs_conf", "mask_penalty=1.0e-2", "--grad_norm_params", "{}")
    method = model.sparse_method
    assert isinstance(method, MSRSSearch)
    assert any(n.endswith("mask_logits") for n, _ in model.named_parameters())
    assert not any("sparse_method" in k for k in model.state_dict())
    model.train()
    torch.manual_seed(3)
    loss, stats, weight = model(**batch())
    torch.manual_seed(3)
    data_loss, data_stats, _ = ESPnetASRModel.forward(model, **batch())
    phi_sum = sum(p.detach().sum() for p in method.logits)
    torch.testing.assert_close(loss, data_loss + 1e-2 * phi_sum)
    assert torch.equal(stats["loss"], loss.detach())
    assert loss.shape == (1,)  # as ESPnet's force_gatherable gives it
    for key in ("mask_penalty", "sparsity", "phi_mean", "phi_std", "phi_min", "phi_max"):
        assert stats[key].shape == (1,), key
    torch.testing.assert_close(stats["mask_penalty"], (1e-2 * phi_sum).reshape(1))
    assert torch.equal(stats["loss_att"], data_stats["loss_att"])


def test_grad_norms_are_training_stats_of_the_next_forward():
    model = build(MSRSASRTask)  # default group: first FFN linear of block 0
    assert list(model.grad_norm_monitor.norms_sq) == ["grad_norm_enc0_ffn"]
    model.train()
    loss, stats, _ = model(**batch())
    assert "grad_norm_enc0_ffn" not in stats
    loss.sum().backward()
    w1 = model.encoder.encoders[0].feed_forward_macaron.w_1
    expected = torch.cat([w1.weight.grad.flatten(), w1.bias.grad.flatten()]).norm()
    stats = model(**batch())[1]
    torch.testing.assert_close(stats["grad_norm_enc0_ffn"], expected.reshape(1))
    model.eval()
    assert "grad_norm_enc0_ffn" not in model(**batch())[1]


def test_method_term_promotes_the_loss_dtype():
    class Float64Term:
        def setup(self, model, selection, seed):
            pass

        def loss_terms(self, model):
            return torch.ones((), dtype=torch.float64), {}

    model = build(MSRSASRTask, "--grad_norm_params", "{}")
    model.setup_training(Float64Term())
    loss, _, _ = model(**batch())
    assert loss.dtype == torch.float64


def test_other_models_refuse_sparse_training_and_setup_runs_once():
    with pytest.raises(ValueError, match="msrs_conf.mode=search .* need model: msrs"):
        build(MSRSASRTask, "--model", "espnet", "--msrs_conf", "mode=search")
    plain = build(MSRSASRTask, "--model", "espnet")  # plain ESPnet training
    assert type(plain) is ESPnetASRModel
    model = build(MSRSASRTask, "--msrs_conf", "mode=search")
    with pytest.raises(ValueError, match="already called"):
        model.setup_training(MSRSSearch())
