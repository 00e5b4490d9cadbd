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

train_set=train      # English clips with a transcript, minus valid
valid_set=valid      # 1000 random labelled clips
test_sets=valid      # VoxCeleb2 has no transcribed test set (RESULTS.md flags it)

run_help
./avsr.sh \
    --modality "${modality}" \
    --method "${method}" \
    --retrain_mode "${retrain_mode}" \
    --nj "${nj}" \
    --local_data_opts "--modality ${modality} --nj ${nj}${local_data_opts}" \
    --train_set "${train_set}" \
    --valid_set "${valid_set}" \
    --test_sets "${test_sets}" \
    --token_type bpe --bpemode unigram --nbpe 5000 \
    --asr_config "${asr_config}" \
    --search_config "${search_config}" \
    --inference_config conf/decode_asr.yaml \
    "$@"
