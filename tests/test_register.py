"""Tests of espnet_msrs.register: idempotent, collision-safe, lazy."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

EXPECTED = {
    "model": ["msrs"],
    "encoder": ["msrs_conformer"],
    "decoder": ["msrs_transformer"],
    "frontend": ["av_resnet"],
    "preprocessor": ["av"],
    "scheduler": ["warmup_constant_sqrt_cooldown", "warmup_cosine"],
}


def test_register_is_idempotent():
    from espnet_msrs.register import register

    first = register()
    import espnet2.tasks.asr as asr_task

    before = {
        choices.name: dict(choices.classes)
        for choices in (
            asr_task.encoder_choices,
            asr_task.decoder_choices,
            asr_task.frontend_choices,
            asr_task.preprocessor_choices,
        )
    }
    second = register()
    assert first == second == EXPECTED
    for choices in (
        asr_task.encoder_choices,
        asr_task.decoder_choices,
        asr_task.frontend_choices,
        asr_task.preprocessor_choices,
    ):
        assert choices.classes == before[choices.name]
    from espnet_msrs.asr.encoder.conformer_encoder import MSRSConformerEncoder

    assert asr_task.encoder_choices.get_class("msrs_conformer") is MSRSConformerEncoder
    from espnet2.asr.espnet_model import ESPnetASRModel

    from espnet_msrs.asr.espnet_model import MSRSESPnetModel

    assert asr_task.model_choices.get_class("msrs") is MSRSESPnetModel
    assert issubclass(MSRSESPnetModel, ESPnetASRModel)
    # ESPnet's own choices are untouched
    assert "conformer" in asr_task.encoder_choices.classes


def test_register_refuses_a_name_collision():
    from espnet_msrs.register import register

    register()
    import espnet2.tasks.asr as asr_task
    from espnet2.asr.decoder.transformer_decoder import TransformerDecoder

    classes = asr_task.decoder_choices.classes
    original = classes["msrs_transformer"]
    classes["msrs_transformer"] = TransformerDecoder  # someone else's class
    try:
        with pytest.raises(ValueError, match=r"--decoder msrs_transformer is already registered to .*TransformerDecoder"):
            register()
        assert classes["msrs_transformer"] is TransformerDecoder
    finally:
        classes["msrs_transformer"] = original
    assert register() == EXPECTED


def test_lazy_registration_and_train_help_in_a_fresh_process(tmp_path):
    """``import espnet_msrs`` does not import espnet2; importing
    espnet2.tasks.asr afterwards registers; ``python -m
    espnet_msrs.bin.asr_train --help`` lists our names (one process)."""
    script = textwrap.dedent(
        """
        import runpy, sys
        import espnet_msrs
        loaded = sorted(m for m in sys.modules if m.split(".")[0] == "espnet2")
        print("ESPNET2_AFTER_IMPORT", loaded, "torch" in sys.modules)
        import espnet2.tasks.asr as asr_task
        print("REGISTERED", "msrs_conformer" in asr_task.encoder_choices.classes,
              "msrs_transformer" in asr_task.decoder_choices.classes,
              "av_resnet" in asr_task.frontend_choices.classes,
              "av" in asr_task.preprocessor_choices.classes,
              "msrs" in asr_task.model_choices.classes)
        sys.stdout.flush()
        sys.argv = ["asr_train", "--help"]
        runpy.run_module("espnet_msrs.bin.asr_train", run_name="__main__")
        """
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "ESPNET2_AFTER_IMPORT [] False" in out  # cheap: no espnet2, no torch
    assert "REGISTERED True True True True True" in out
    help_text = out.split("REGISTERED", 1)[1]
    assert "--msrs_conf" in help_text
    assert "--model {espnet,maskctc,pit_espnet,msrs}" in help_text
    assert "The model type (default: msrs)" in help_text  # our task's default
    for name in ("msrs_conformer", "msrs_transformer", "av_resnet",
                 "warmup_constant_sqrt_cooldown", "warmup_cosine"):
        assert name in help_text, name


def test_register_refuses_a_scheduler_name_collision():
    from espnet2.schedulers.warmup_lr import WarmupLR
    from espnet2.tasks.abs_task import scheduler_classes

    from espnet_msrs.register import register
    from espnet_msrs.schedulers.warmup_constant_sqrt_cooldown import (
        WarmupConstantSqrtCooldownLR,
    )

    register()
    assert scheduler_classes["warmup_constant_sqrt_cooldown"] is WarmupConstantSqrtCooldownLR
    scheduler_classes["warmup_constant_sqrt_cooldown"] = WarmupLR
    try:
        with pytest.raises(ValueError, match=r"--scheduler warmup_constant_sqrt_cooldown is already registered to .*WarmupLR"):
            register()
    finally:
        scheduler_classes["warmup_constant_sqrt_cooldown"] = WarmupConstantSqrtCooldownLR
    assert register() == EXPECTED
    assert "warmuplr" in scheduler_classes  # ESPnet's own choices are untouched
