#!/usr/bin/env bash
# The embedded demo: a synthetic GRID-like audio-visual corpus made here
# (espeak-ng speech, rendered talking faces), trained with MSRS (mask search +
# sparse retraining) as a tiny AVSR model on a CPU, decoded clean and in
# babble noise, scored and packed:   ./run.sh --stage 1 --stop_stage 13
# The same data with the tiny audio-only or video-only model (stages 7-13
# reuse stages 1-6):   ./run.sh --modality audio   |   ./run.sh --modality video
# Every option of avsr.sh can be given here and wins ("$@" comes last);
# ./run.sh --help lists them with the values this recipe gives them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
. ./path.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../../../local/run_options.sh"

# Options this recipe derives defaults from (same names as avsr.sh's).
modality=av          # audio (ASR) | video (VSR) | av (AVSR)
local_data_opts=     # added to the data options below
scan_run_options modality -- "$@"
set -- ${run_args[@]+"${run_args[@]}"}
case "${modality}" in audio) model=asr ;; video) model=vsr ;; *) model=avsr ;; esac
search_config=conf/tuning/search_${model}_demo.yaml
asr_config=conf/tuning/train_${model}_demo.yaml
config_rule="--modality audio|video|av chooses conf/tuning/{search,train}_{asr,vsr,avsr}_demo.yaml"

train_set=train      # 4 speakers x 95 sentences
valid_set=valid      # 4 x 5
test_sets=test       # 4 x 10

run_help
./avsr.sh \
    --local_data_opts "--num_speakers 4 --utts_per_speaker 110 --num_valid 5 --num_test 10 --seed 0 --nj 2${local_data_opts}" \
    --train_set "${train_set}" \
    --valid_set "${valid_set}" \
    --test_sets "${test_sets}" \
    --modality "${modality}" \
    --method msrs \
    --retrain_mode sparse \
    --ngpu 0 \
    --nj 2 \
    --inference_nj 2 \
    --video_format npy \
    --nbpe 50 \
    --bpemode unigram \
    --bpe_opts "--hard_vocab_limit=false" \
    --search_config "${search_config}" \
    --asr_config "${asr_config}" \
    --inference_config conf/decode_asr.yaml \
    "$@"
