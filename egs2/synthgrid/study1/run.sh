#!/usr/bin/env bash
# One cell of the CPU-scale study of MSRS and LR-SMS (see README.md and
# STUDY.md here): the synthetic GRID-like corpus of the demo recipe
# (../avsr1) with a larger test set, and the shared 13-stage script.
# The table scripts (local/table1.sh, ...) call this with a --tag, a
# --modality, a --method, configs and per-cell --asr_args; every option of
# avsr.sh can be given here (./run.sh --help); they come last and win.
set -euo pipefail
cd "$(dirname "$0")"

./avsr.sh \
    --local_data_opts "--num_speakers 4 --utts_per_speaker 120 --num_valid 5 --num_test 20 --seed 0 --nj 2" \
    --train_set train \
    --valid_set valid \
    --test_sets test \
    --ngpu 0 \
    --nj 2 \
    --inference_nj 2 \
    --video_format npy \
    --nbpe 50 \
    --bpemode unigram \
    --bpe_opts "--hard_vocab_limit=false" \
    --inference_config conf/decode_asr.yaml \
    "$@"
