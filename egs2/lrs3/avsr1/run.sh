#!/usr/bin/env bash
# LRS3 (TED talks; pretrain 408 h + trainval 30 h, test 0.9 h): VSR, ASR or
# AVSR trained from scratch with MSRS, LR-SMS, LayerScale or dense training.
# Corpus paths: db.sh (LRS3, LRS3_LANDMARKS). Stages 1-13: README.md.
#   ./run.sh --modality video                    # MSRS VSR large, sparse retraining (MSRS Table 1)
#   ./run.sh --modality av                       # MSRS AVSR (MSRS Table 3)
#   ./run.sh --modality audio                    # LR-SMS ASR (LR-SMS Table II)
#   ./run.sh --modality av --method lr_sms       # LR-SMS AVSR (LR-SMS Table III)
#   ./run.sh --local_data_opts "--detector mediapipe"   # no landmark release
# Every option of avsr.sh can be given here and wins ("$@" comes last);
# ./run.sh --help lists them with the values this recipe gives them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
. ./path.sh
. "${MAIN_ROOT}/local/run_options.sh"

# Options this recipe derives defaults from (same names as avsr.sh's).
modality=av          # audio (ASR) | video (VSR) | av (AVSR)
method=              # default: msrs (video, av), lr_sms (audio)
retrain_mode=sparse  # MSRS retraining: dense | sparse | grad_masked
nj=4                 # data preparation jobs
local_data_opts=     # added to the data options below
scan_run_options modality method retrain_mode nj -- "$@"
set -- ${run_args[@]+"${run_args[@]}"}
paper_configs train_vsr_large train_avsr train_asr

train_set=train      # pretrain (cut at word boundaries into <= 24 s) + trainval - valid
valid_set=valid      # 1200 trainval utterances (or --local_data_opts "--valid_list ...")
test_sets=test       # the official test set: 1,321 utterances
max_dur=24           # the longest pretrain segment

run_help
./avsr.sh \
    --modality "${modality}" \
    --method "${method}" \
    --retrain_mode "${retrain_mode}" \
    --nj "${nj}" \
    --local_data_opts "--modality ${modality} --nj ${nj} --pretrain_max_sec ${max_dur}${local_data_opts}" \
    --train_set "${train_set}" \
    --valid_set "${valid_set}" \
    --test_sets "${test_sets}" \
    --official_test_sizes "test=1321" \
    --max_dur "${max_dur}" \
    --token_type bpe --bpemode unigram --nbpe 5000 \
    --asr_config "${asr_config}" \
    --search_config "${search_config}" \
    --inference_config conf/decode_asr.yaml \
    "$@"
