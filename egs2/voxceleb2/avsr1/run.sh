#!/usr/bin/env bash
# VoxCeleb2 (English part, ~1.3 kh of the dev set) with transcripts from a
# labels CSV or from a pretrained ESPnet ASR model: AVSR, VSR or ASR from
# scratch. Corpus paths: db.sh (VOXCELEB2, VOXCELEB2_EN_IDS, VOXCELEB2_LABELS,
# VOXCELEB2_LANDMARKS). The papers train on LRS3 + VoxCeleb2 (+ AVSpeech) and
# test on LRS3: prepare data/train here, then train in ../../lrs3/avsr1
# (README.md, "Combining with LRS3").
#   ./run.sh --modality av                                          # labels from VOXCELEB2_LABELS
#   ./run.sh --local_data_opts "--asr_model exp/asr/packed/model.zip"   # automatic labels
# Every option of avsr.sh can be given here and wins ("$@" comes last);
# ./run.sh --help lists them with the values this recipe gives them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
. ./path.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../../../local/run_options.sh"

# --modality av|video|audio, --method, --retrain_mode, --nj: see
# local/run_options.sh (paper_recipe); configs from conf/tuning by paper_configs.
local_data_opts=     # added to the data options below
paper_recipe "$@"
set -- ${run_args[@]+"${run_args[@]}"}

train_set=train      # English clips with a transcript, minus valid
valid_set=valid      # 1000 random labelled clips
test_sets=valid      # VoxCeleb2 has no transcribed test set (RESULTS.md flags it)

run_help
./avsr.sh "${paper_args[@]}" \
    --local_data_opts "--modality ${modality} --nj ${nj}${local_data_opts}" \
    --train_set "${train_set}" \
    --valid_set "${valid_set}" \
    --test_sets "${test_sets}" \
    "$@"
