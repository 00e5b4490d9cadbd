#!/usr/bin/env bash
# Stage 1 of the LibriSpeech recipe: data/{train_960,dev,dev_clean,dev_other,
# test_clean,test_other} from the corpus on disk (LIBRISPEECH in db.sh).
# See local/prepare_librispeech.py and README.md.
set -euo pipefail

log() {
    local fname=${BASH_SOURCE[1]##*/}
    echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*"
}
SECONDS=0

# Options (defaults; each can be given as --name value).
train_sets="train-clean-100 train-clean-360 train-other-500"   # 960 h
train_name=train_960
data_dir=data
local_dir=data/local/librispeech

help_message=$(cat <<HELP
Usage: $0 [options]
Options (default):
    --train_sets ("${train_sets}")
    --train_name (${train_name})      e.g. --train_sets train-clean-100 --train_name train_clean_100
    --data_dir (${data_dir}) --local_dir (${local_dir})
HELP
)
while [ $# -gt 0 ]; do
    case "$1" in
        --help|-h) echo "${help_message}"; exit 0 ;;
        --*=*) name=${1%%=*}; name=${name#--}; value=${1#*=}; shift ;;
        --*) name=${1#--}; [ $# -ge 2 ] || { log "Error: $1 needs a value"; exit 1; }
             value=$2; shift 2 ;;
        *) log "Error: unexpected argument '$1'"; echo "${help_message}"; exit 1 ;;
    esac
    name=${name//-/_}
    case "${name}" in
        train_sets|train_name|data_dir|local_dir) printf -v "${name}" '%s' "${value}" ;;
        # options of the audio-visual recipes that do not apply here
        nj|modality) ;;
        *) log "Error: unknown option --${name}"; echo "${help_message}"; exit 1 ;;
    esac
done

recipe_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[ -f ./db.sh ] || { log "Error: run from the recipe directory (db.sh not found in $(pwd))"; exit 1; }
. ./db.sh
[ -f ./path.sh ] && . ./path.sh
python=${PYTHON:-python3}

if [ -z "${LIBRISPEECH:-}" ]; then
    log "Error: LIBRISPEECH is not set: set LIBRISPEECH in $(pwd)/db.sh to the LibriSpeech folder (holding train-clean-100/, ..., test-other/)"
    exit 1
fi

log "Stage 1: LibriSpeech layout: ${LIBRISPEECH} -> ${data_dir}/{${train_name},dev,dev_clean,dev_other,test_clean,test_other}"
# shellcheck disable=SC2086
"${python}" "${recipe_dir}/local/prepare_librispeech.py" --librispeech "${LIBRISPEECH}" \
    --train_sets ${train_sets} --train_name "${train_name}" \
    --data_dir "${data_dir}" --report_dir "${local_dir}"

log "Successfully finished. [elapsed=${SECONDS}s]"
