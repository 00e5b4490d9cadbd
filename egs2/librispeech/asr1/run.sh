#!/usr/bin/env bash
# LibriSpeech (960 h by default: train-clean-100 + train-clean-360 +
# train-other-500; validation dev-clean + dev-other; tests test-clean,
# test-other, dev-clean, dev-other): ASR from the raw waveform, dense or
# LR-SMS low rank (the LR-SMS paper, Tables I-II). Corpus path: db.sh
# (LIBRISPEECH). Stages 1-13: README.md.
#   ./run.sh                                                   # LR-SMS [0.1,0.2]/[0.2,0.4] (107 M)
#   ./run.sh --method dense                                    # full-rank baseline (243 M)
#   ./run.sh --asr_config conf/tuning/train_asr_lr_ffn_a025.yaml --tag audio_lr_ffn_a025
#   ./run.sh --train_subsets train-clean-100 --test_subsets "test-clean"   # 100 h, one test set
# Subsets are LibriSpeech's folder names; only those asked for must exist.
# Every option of avsr.sh can be given here and wins ("$@" comes last);
# ./run.sh --help lists them with the values this recipe gives them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
. ./path.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../../../local/run_options.sh"

# Options of this recipe (the subsets) and those it derives defaults from.
train_subsets="train-clean-100 train-clean-360 train-other-500"  # -> data/<train_set>
valid_subsets="dev-clean dev-other"                              # -> data/dev
test_subsets="test-clean test-other dev-clean dev-other"         # -> data/test_clean, ...
modality=audio
method=lr_sms        # lr_sms | dense
retrain_mode=sparse
local_data_opts=     # added to the data options below
scan_run_options train_subsets valid_subsets test_subsets method -- "$@"
set -- ${run_args[@]+"${run_args[@]}"}
# The subset options are this recipe's own: avsr.sh does not take them.
_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --train_subsets|--valid_subsets|--test_subsets) shift 2 ;;
        *) _args+=("$1"); shift ;;
    esac
done
set -- ${_args[@]+"${_args[@]}"}
paper_configs train_vsr_large train_avsr train_asr

if [ "${train_subsets}" = "train-clean-100 train-clean-360 train-other-500" ]; then
    train_set=train_960
else
    train_set=$(echo "${train_subsets}" | tr ' -' '__')
fi
valid_set=dev
test_sets=$(echo "${test_subsets}" | tr '-' '_')

run_help
./avsr.sh \
    --modality audio \
    --method "${method}" \
    --local_data_opts "--train_subsets '${train_subsets}' --train_name ${train_set} --valid_subsets '${valid_subsets}' --test_subsets '${test_subsets}'${local_data_opts}" \
    --train_set "${train_set}" \
    --valid_set "${valid_set}" \
    --test_sets "${test_sets}" \
    --official_test_sizes "test_clean=2620 test_other=2939 dev_clean=2703 dev_other=2864" \
    --max_dur 36 \
    --token_type bpe --bpemode unigram --nbpe 5000 \
    --asr_config "${asr_config}" \
    --search_config "${search_config}" \
    --inference_config conf/decode_asr.yaml \
    "$@"
