#!/usr/bin/env bash
# Stage 1 of the VoxCeleb2 recipe: data/{train,valid} from the corpus on disk.
# Paths in db.sh: VOXCELEB2 (required), VOXCELEB2_EN_IDS (English id list),
# VOXCELEB2_LABELS (labels CSV), VOXCELEB2_LANDMARKS (landmark tree).
# See local/prepare_voxceleb2.py, local/transcribe.py and README.md.
set -euo pipefail

log() {
    local fname=${BASH_SOURCE[1]##*/}
    echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*"
}
SECONDS=0

# Options (defaults; each can be given as --name value).
stage=1                 # 1: prepare; 2: automatic labels; 3: landmarks; 4: re-list
stop_stage=4
nj=4                    # parallel jobs (audio extraction, transcription, detection)
modality=av             # audio | video | av
subsets=dev             # VoxCeleb2 subsets (dev, test)
id_list=                # English selection (default: VOXCELEB2_EN_IDS of db.sh)
labels=                 # labels CSV(s) (default: VOXCELEB2_LABELS of db.sh)
labels_token_list=      # <piece> <id> unit list: converts token-id labels (Auto-AVSR format)
asr_model=              # packed zip / model-zoo name: label clips without a label
asr_opts=               # extra options of local/transcribe.py (e.g. "--device cuda")
asr_cache_dir=          # where the model is unpacked (default: <local_dir>/asr_model)
num_valid=1000          # random held-out labelled utterances (data/valid)
landmark_dir=           # landmark tree (default: VOXCELEB2_LANDMARKS of db.sh)
detector=none           # none | mediapipe: detect landmarks that the tree lacks
landmark_env=           # venv of the detector (default: <repo>/.venv_landmarks)
make_landmark_env=true  # create landmark_env with local/make_landmark_env.sh if missing
data_dir=data
local_dir=data/local/vox2

help_message=$(cat <<EOF
Usage: $0 [options]   (from the recipe directory; ./run.sh passes --local_data_opts)
Options (default):
    --stage (${stage}) --stop_stage (${stop_stage}) --nj (${nj})
    --modality (${modality})      audio | video | av
    --subsets ("${subsets}")      dev and/or test
    --id_list (VOXCELEB2_EN_IDS of db.sh) --labels (VOXCELEB2_LABELS of db.sh)
    --labels_token_list ()       unit list converting token-id labels (Auto-AVSR's unigram5000_units.txt)
    --asr_model ()               packed zip or model-zoo name for automatic labels
    --asr_opts ("${asr_opts}") --asr_cache_dir (<local_dir>/asr_model) --num_valid (${num_valid})
    --landmark_dir (VOXCELEB2_LANDMARKS of db.sh) --detector (${detector})
    --landmark_env (<repo>/.venv_landmarks) --make_landmark_env (${make_landmark_env})
    --data_dir (${data_dir}) --local_dir (${local_dir})
EOF
)
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../../../../local/data_options.sh"
[ -n "${VOXCELEB2:-}" ] || { log "Error: VOXCELEB2 is not set: set VOXCELEB2 in $(pwd)/db.sh to the folder that holds dev/mp4/<id>/<video>/<n>.mp4"; exit 1; }
id_list=${id_list:-${VOXCELEB2_EN_IDS:-}}
labels=${labels:-${VOXCELEB2_LABELS:-}}
landmark_dir=${landmark_dir:-${VOXCELEB2_LANDMARKS:-}}
landmark_env=${landmark_env:-${MAIN_ROOT}/.venv_landmarks}
case "${modality}" in audio|video|av) ;; *) log "Error: --modality ${modality}: use audio, video or av"; exit 1 ;; esac
case "${detector}" in none|mediapipe) ;; *) log "Error: --detector ${detector}: use none or mediapipe"; exit 1 ;; esac
if [ -z "${labels}" ] && [ -z "${asr_model}" ]; then
    log "Error: VoxCeleb2 has no transcripts: set VOXCELEB2_LABELS in $(pwd)/db.sh (a dataset,rel_path,length,text CSV) or give --asr_model (--local_data_opts \"--asr_model <packed zip or zoo name>\")"
    exit 1
fi
auto_labels=${local_dir}/auto_labels.csv
asr_cache_dir=${asr_cache_dir:-${local_dir}/asr_model}

prepare() {
    local opts=() all_labels=()
    [ -n "${id_list}" ] && opts+=(--id_list "${id_list}")
    [ -n "${landmark_dir}" ] && opts+=(--landmark_dir "${landmark_dir}")
    [ -n "${labels_token_list}" ] && opts+=(--labels_token_list "${labels_token_list}")
    # shellcheck disable=SC2206
    [ -n "${labels}" ] && all_labels+=(${labels})
    [ -s "${auto_labels}" ] && all_labels+=("${auto_labels}")
    [ -n "${asr_model}" ] && opts+=(--extract_audio true)
    # shellcheck disable=SC2086
    "${python}" local/prepare_voxceleb2.py \
        --vox2 "${VOXCELEB2}" --subsets ${subsets//,/ } --data_dir "${data_dir}" \
        --modality "${modality}" --num_valid "${num_valid}" \
        --wav_dir "${local_dir}/wav" --detected_landmark_dir "${local_dir}/landmarks" \
        --report_dir "${local_dir}" --nj "${nj}" \
        --labels ${all_labels[@]+"${all_labels[@]}"} ${opts[@]+"${opts[@]}"}
}

if [ "${stage}" -le 1 ] && [ "${stop_stage}" -ge 1 ]; then
    log "Stage 1.1: VoxCeleb2 layout: ${VOXCELEB2} (ids: ${id_list:-all}, labels: ${labels:-none}) -> ${data_dir}/{train,valid}"
    prepare
fi

relist=false
if [ "${stage}" -le 2 ] && [ "${stop_stage}" -ge 2 ] && [ -n "${asr_model}" ] \
    && [ -s "${local_dir}/unlabelled.tsv" ]; then
    log "Stage 1.2: automatic labels with ${asr_model}: ${local_dir}/unlabelled.tsv -> ${auto_labels}"
    # shellcheck disable=SC2086
    "${python}" local/transcribe.py --clips "${local_dir}/unlabelled.tsv" \
        --out_csv "${auto_labels}" --asr_model "${asr_model}" \
        --model_cache_dir "${asr_cache_dir}" --nj "${nj}" ${asr_opts}
    relist=true
fi

todo=${local_dir}/landmark_todo.scp
if [ "${stage}" -le 3 ] && [ "${stop_stage}" -ge 3 ] && [ "${modality}" != audio ] \
    && [ "${detector}" = mediapipe ]; then
    if "${relist}"; then prepare; relist=false; fi   # the newly labelled clips too
    if [ -s "${todo}" ]; then
        log "Stage 1.3: face landmarks for the videos without any -> ${local_dir}/landmarks"
        "${MAIN_ROOT}/local/detect_landmarks.sh" --todo "${todo}" --out_dir "${local_dir}/landmarks" \
            --nj "${nj}" --landmark_env "${landmark_env}" --make_landmark_env "${make_landmark_env}"
        relist=true
    fi
fi

if [ "${stage}" -le 4 ] && [ "${stop_stage}" -ge 4 ] && "${relist}"; then
    log "Stage 1.4: re-list ${data_dir}/{train,valid} with the new labels/landmarks"
    prepare
fi
if [ ! -s "${data_dir}/train/text" ]; then
    log "Error: ${data_dir}/train has no labelled utterance (see ${local_dir}/skipped.txt and ${local_dir}/unlabelled.tsv)"
    exit 1
fi

log "Successfully finished. [elapsed=${SECONDS}s]"
