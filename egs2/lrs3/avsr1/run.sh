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
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../../../local/run_options.sh"

local_data_opts=     # added to the LRS3 data options below
# --modality, --method, --retrain_mode, --nj and the paper configs they choose:
# paper_recipe (local/run_options.sh).
paper_recipe "$@"
set -- ${run_args[@]+"${run_args[@]}"}

train_set=train      # pretrain (cut at word boundaries into <= 24 s) + trainval - valid
valid_set=valid      # 1200 trainval utterances (or --local_data_opts "--valid_list ...")
test_sets=test       # the official test set: 1,321 utterances
max_dur=24           # the longest pretrain segment

run_help
./avsr.sh "${paper_args[@]}" \
    --local_data_opts "--modality ${modality} --nj ${nj} --pretrain_max_sec ${max_dur}${local_data_opts}" \
    --train_set "${train_set}" \
    --valid_set "${valid_set}" \
    --test_sets "${test_sets}" \
    --official_test_sizes "test=1321" \
    --max_dur "${max_dur}" \
    "$@"
