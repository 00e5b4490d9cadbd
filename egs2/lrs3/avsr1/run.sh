#!/usr/bin/env bash
# LRS3 (TED talks; pretrain 408 h + trainval 30 h, test 0.9 h): VSR, ASR or
# AVSR trained from scratch with MSRS, LR-SMS, LayerScale or dense training.
# Corpus paths: db.sh. Stages 1-13 and every option: ./avsr.sh --help.
#   ./run.sh --modality video                    # MSRS VSR large, sparse retraining (MSRS Table 1)
#   ./run.sh --modality av                       # MSRS AVSR (MSRS Table 3)
#   ./run.sh --modality audio                    # LR-SMS ASR (LR-SMS Table II)
#   ./run.sh --modality av --method lr_sms       # LR-SMS AVSR (LR-SMS Table III)
#   ./run.sh ... --local_data_opts "--detector mediapipe"   # no landmark release
# Defaults below depend on --modality/--method/--retrain_mode given on the
# command line; any option given there wins ("$@" comes last).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

# Options this script derives its defaults from (same names as avsr.sh).
modality=av
method=
retrain_mode=sparse
nj=4
local_data_opts=    # appended to the recipe's data options below
_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --modality|--method|--retrain_mode|--nj)
            printf -v "${1#--}" '%s' "${2:-}"; _args+=("$1" "${2:-}"); shift; shift || true ;;
        --modality=*|--method=*|--retrain_mode=*|--nj=*)
            _n=${1%%=*}; printf -v "${_n#--}" '%s' "${1#*=}"; _args+=("$1"); shift ;;
        --local_data_opts) local_data_opts+=" ${2:-}"; shift; shift || true ;;
        --local_data_opts=*) local_data_opts+=" ${1#*=}"; shift ;;
        *) _args+=("$1"); shift ;;
    esac
done
set -- ${_args[@]+"${_args[@]}"}

# Paper configs (conf/tuning -> <repo>/conf/tuning; README.md lists them all).
case "${modality}" in
    video) prefix=train_vsr_large; method=${method:-msrs} ;;
    av) prefix=train_avsr; method=${method:-msrs} ;;
    audio) prefix=train_asr; method=${method:-lr_sms} ;;
    *) prefix=train_avsr ;;   # avsr.sh reports the bad value
esac
search_config=
case "${method}" in
    msrs)
        search_config=conf/tuning/${prefix}_msrs_search.yaml
        asr_config=conf/tuning/${prefix}_msrs_${retrain_mode/grad_masked/gradmask}.yaml ;;
    lr_sms) asr_config=conf/tuning/${prefix}_lr_sms_m010-020_f020-040.yaml ;;
    layerscale) asr_config=conf/tuning/${prefix}_layerscale.yaml ;;
    *) asr_config=conf/tuning/${prefix}.yaml ;;
esac
for _c in asr_config search_config; do
    if [ -n "${!_c}" ] && [ ! -f "${!_c}" ]; then
        echo "$0: no default ${_c} for --modality ${modality} --method ${method} (${!_c} does not exist); give --${_c}" >&2
        printf -v "${_c}" '%s' ""
    fi
done

train_set=train      # pretrain (cut at word boundaries into <= 24 s) + trainval - valid
valid_set=valid      # 1200 trainval utterances (or --local_data_opts "--valid_list ...")
test_sets=test
max_dur=24           # the longest pretrain segment

./avsr.sh \
    --modality "${modality}" \
    --method "${method}" \
    --retrain_mode "${retrain_mode}" \
    --nj "${nj}" \
    --local_data_opts "--modality ${modality} --nj ${nj} --pretrain_max_sec ${max_dur}${local_data_opts}" \
    --train_set "${train_set}" \
    --valid_set "${valid_set}" \
    --test_sets "${test_sets}" \
    --max_dur "${max_dur}" \
    --token_type bpe --bpemode unigram --nbpe 5000 \
    --asr_config "${asr_config}" \
    --search_config "${search_config}" \
    --inference_config conf/decode_asr.yaml \
    "$@"
