#!/usr/bin/env bash
# The embedded demo: a synthetic GRID-like audio-visual corpus made here
# (espeak-ng speech, rendered talking faces), trained with MSRS (mask search +
# sparse retraining) as a tiny AVSR model on a CPU, decoded clean and in
# babble noise, scored and packed:   ./run.sh --stage 1 --stop_stage 13
# Other tiny models of the same data (stages 7-13 reuse stages 1-6):
#   ASR:  ./run.sh --modality audio --asr_config conf/tuning/train_asr_tiny.yaml --search_config conf/tuning/search_asr_tiny.yaml
#   VSR:  ./run.sh --modality video --asr_config conf/tuning/train_vsr_tiny.yaml --search_config conf/tuning/search_vsr_tiny.yaml
# Any option of avsr.sh can be given here (./run.sh --help); they come last and win.
set -euo pipefail
cd "$(dirname "$0")"

train_set=train
valid_set=valid
test_sets=test

./avsr.sh \
    --local_data_opts "--num_speakers 4 --utts_per_speaker 110 --num_valid 5 --num_test 10 --seed 0 --nj 2" \
    --train_set "${train_set}" \
    --valid_set "${valid_set}" \
    --test_sets "${test_sets}" \
    --modality av \
    --method msrs \
    --retrain_mode sparse \
    --ngpu 0 \
    --nj 2 \
    --inference_nj 2 \
    --video_format npy \
    --nbpe 50 \
    --bpemode unigram \
    --bpe_opts "--hard_vocab_limit=false" \
    --search_config conf/tuning/search_avsr_tiny.yaml \
    --asr_config conf/tuning/train_avsr_tiny.yaml \
    --inference_config conf/decode_asr.yaml \
    "$@"
