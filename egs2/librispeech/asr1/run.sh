#!/usr/bin/env bash
# LibriSpeech 960 h (train-clean-100 + train-clean-360 + train-other-500;
# dev = dev-clean + dev-other; test on test-clean, test-other, dev-clean,
# dev-other): ASR from the raw waveform, dense or LR-SMS low-rank (the
# LR-SMS paper, Tables I-II). Corpus path: db.sh. Stages: ./avsr.sh --help.
#   ./run.sh                                                         # LR-SMS [0.1,0.2]/[0.2,0.4] (107 M)
#   ./run.sh --method dense --asr_config conf/train_asr.yaml          # full-rank baseline (243 M)
#   ./run.sh --asr_config conf/tuning/train_asr_lr_ffn_a025.yaml      # any row of Tables I-II (README.md)
# Any option given here wins ("$@" comes last).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

train_set=train_960
valid_set=dev
test_sets="test_clean test_other dev_clean dev_other"

./avsr.sh \
    --modality audio \
    --method lr_sms \
    --train_set "${train_set}" \
    --valid_set "${valid_set}" \
    --test_sets "${test_sets}" \
    --max_dur 36 \
    --token_type bpe --bpemode unigram --nbpe 5000 \
    --asr_config conf/train_asr_lr_sms.yaml \
    --inference_config conf/decode_asr.yaml \
    "$@"
