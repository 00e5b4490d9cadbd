#!/usr/bin/env bash
# Stage 1 of the LibriSpeech recipe: Kaldi-style data directories from the
# corpus on disk (LIBRISPEECH in db.sh): data/<train_name> (--train_subsets),
# data/dev (--valid_subsets) and one data/<subset> per test subset
# (--test_subsets, "-" written "_"). Only the subsets asked for must exist.
# See local/prepare_librispeech.py and README.md.
set -euo pipefail

log() {
    local fname=${BASH_SOURCE[1]##*/}
    echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*"
}
SECONDS=0

# Options (defaults; each can be given as --name value; lists space or comma separated).
train_subsets="train-clean-100 train-clean-360 train-other-500"   # 960 h
train_name=train_960
valid_subsets="dev-clean dev-other"     # -> data/dev
test_subsets="test-clean test-other dev-clean dev-other"   # -> data/test_clean, ...
data_dir=data
local_dir=data/local/librispeech
nj=1                    # accepted for the common interface of the recipes (unused)
modality=audio          # accepted for the common interface of the recipes (audio only)

help_message=$(cat <<HELP
Usage: $0 [options]   (from the recipe directory; ./run.sh passes --local_data_opts)
Options (default):
    --train_subsets ("${train_subsets}") --train_name (${train_name})
    --valid_subsets ("${valid_subsets}")       -> data/dev
    --test_subsets ("${test_subsets}")          -> data/test_clean, ...
    --data_dir (${data_dir}) --local_dir (${local_dir})
HELP
)
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../../../../local/data_options.sh"

if [ -z "${LIBRISPEECH:-}" ]; then
    log "Error: LIBRISPEECH is not set: set LIBRISPEECH in $(pwd)/db.sh to the LibriSpeech folder (holding train-clean-100/, ..., test-other/)"
    exit 1
fi
[ "${modality}" = audio ] || { log "Error: LibriSpeech has no video: --modality ${modality}"; exit 1; }

log "Stage 1: LibriSpeech ${LIBRISPEECH}: train ${train_subsets} -> ${data_dir}/${train_name}; valid ${valid_subsets} -> ${data_dir}/dev; tests ${test_subsets}"
# shellcheck disable=SC2086
"${python}" local/prepare_librispeech.py --librispeech "${LIBRISPEECH}" \
    --train_subsets ${train_subsets//,/ } --train_name "${train_name}" \
    --valid_subsets ${valid_subsets//,/ } --test_subsets ${test_subsets//,/ } \
    --data_dir "${data_dir}" --report_dir "${local_dir}"

log "Successfully finished. [elapsed=${SECONDS}s]"
