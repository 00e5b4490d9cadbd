#!/usr/bin/env bash
# Stage 1 of the LRS3 recipe: data/{train,valid,test} from the corpus on disk.
# The corpus path is LRS3 in db.sh; the landmark tree (optional) LRS3_LANDMARKS.
# See local/prepare_lrs3.py for what is written, and README.md for the layout.
set -euo pipefail

log() {
    local fname=${BASH_SOURCE[1]##*/}
    echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*"
}
SECONDS=0

# Options (defaults; each can be given as --name value).
stage=1                 # 1: prepare; 2: detect missing landmarks; 3: re-list with them;
                        # 4: combine with --extra_train_dirs
stop_stage=4
nj=4                    # parallel jobs (audio extraction, segmentation, detection)
modality=av             # audio | video | av (audio: no video/landmarks; video: no wavs)
train_subsets="pretrain trainval"   # LRS3 subsets of the training set
pretrain_max_sec=24     # cut pretrain clips longer than this at word boundaries (0: off)
valid_list=             # file of validation ids (trainval/<spk>/<id>); default: random
num_valid=1200          # random validation utterances from trainval (seed 0)
landmark_dir=           # landmark tree (default: LRS3_LANDMARKS of db.sh)
detector=none           # none | mediapipe: detect landmarks that the tree lacks
landmark_env=           # venv of the detector (default: <repo>/.venv_landmarks)
make_landmark_env=true  # create landmark_env with local/make_landmark_env.sh if missing
extra_train_dirs=       # data dirs added to data/train (e.g. ../../voxceleb2/avsr1/data/train)
combined_train=train_lrs3_vox2  # name of data/train + extra_train_dirs
data_dir=data           # output data root
local_dir=data/local/lrs3   # wavs, segments, detected landmarks, reports

help_message=$(cat <<EOF
Usage: $0 [options]   (from the recipe directory; ./run.sh passes --local_data_opts)
Options (default):
    --stage (${stage}) --stop_stage (${stop_stage}) --nj (${nj})
    --modality (${modality})           audio | video | av
    --train_subsets ("${train_subsets}")
    --pretrain_max_sec (${pretrain_max_sec})
    --valid_list (${valid_list}) --num_valid (${num_valid})
    --landmark_dir (LRS3_LANDMARKS of db.sh)
    --detector (${detector})            none | mediapipe
    --landmark_env (<repo>/.venv_landmarks) --make_landmark_env (${make_landmark_env})
    --extra_train_dirs ("${extra_train_dirs}") --combined_train (${combined_train})
    --data_dir (${data_dir}) --local_dir (${local_dir})
EOF
)
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../../../../local/data_options.sh"
# An unset or wrong LRS3 is reported by local/prepare_lrs3.py, naming db.sh.
landmark_dir=${landmark_dir:-${LRS3_LANDMARKS:-}}
landmark_env=${landmark_env:-${MAIN_ROOT}/.venv_landmarks}
case "${modality}" in audio|video|av) ;; *) log "Error: --modality ${modality}: use audio, video or av"; exit 1 ;; esac
case "${detector}" in none|mediapipe) ;; *) log "Error: --detector ${detector}: use none or mediapipe"; exit 1 ;; esac

prepare() {
    local opts=()
    [ -n "${landmark_dir}" ] && opts+=(--landmark_dir "${landmark_dir}")
    [ -n "${valid_list}" ] && opts+=(--valid_list "${valid_list}")
    # shellcheck disable=SC2086
    "${python}" local/prepare_lrs3.py \
        --lrs3 "${LRS3}" --data_dir "${data_dir}" --modality "${modality}" \
        --train_subsets ${train_subsets//,/ } --pretrain_max_sec "${pretrain_max_sec}" \
        --num_valid "${num_valid}" --wav_dir "${local_dir}/wav" \
        --seg_dir "${local_dir}/segments" \
        --detected_landmark_dir "${local_dir}/landmarks" \
        --report_dir "${local_dir}" --nj "${nj}" ${opts[@]+"${opts[@]}"}
}

if [ "${stage}" -le 1 ] && [ "${stop_stage}" -ge 1 ]; then
    log "Stage 1.1: LRS3 layout: ${LRS3} (landmarks: ${landmark_dir:-none}) -> ${data_dir}/{train,valid,test}"
    prepare
fi

todo=${local_dir}/landmark_todo.scp
if [ "${stage}" -le 2 ] && [ "${stop_stage}" -ge 2 ] && [ "${modality}" != audio ] \
    && [ "${detector}" = mediapipe ] && [ -s "${todo}" ]; then
    log "Stage 1.2: face landmarks for the videos without any -> ${local_dir}/landmarks"
    "${MAIN_ROOT}/local/detect_landmarks.sh" --todo "${todo}" --out_dir "${local_dir}/landmarks" \
        --nj "${nj}" --landmark_env "${landmark_env}" --make_landmark_env "${make_landmark_env}"
fi

if [ "${stage}" -le 3 ] && [ "${stop_stage}" -ge 3 ] && [ "${modality}" != audio ] \
    && [ "${detector}" = mediapipe ] && [ -s "${todo}" ]; then
    log "Stage 1.3: add the detected landmarks to ${data_dir}/*/landmark.scp"
    prepare
fi

if [ "${stage}" -le 4 ] && [ "${stop_stage}" -ge 4 ] && [ -n "${extra_train_dirs}" ]; then
    log "Stage 1.4: combine ${data_dir}/train ${extra_train_dirs} -> ${data_dir}/${combined_train}"
    # shellcheck disable=SC2086
    "${python}" -m espnet_msrs.bin.combine_data --out "${data_dir}/${combined_train}" \
        "${data_dir}/train" ${extra_train_dirs}
fi

log "Successfully finished. [elapsed=${SECONDS}s]"
