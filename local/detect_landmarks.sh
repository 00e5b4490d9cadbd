#!/usr/bin/env bash
# local/detect_landmarks.sh — landmarks for the videos a landmark tree lacks
# (stage 1 of the LRS3 and VoxCeleb2 recipes with --detector mediapipe).
#
#   local/detect_landmarks.sh --todo <todo.scp> --out_dir <dir> [--nj N]
#       [--landmark_env DIR] [--make_landmark_env true|false]
#
# <todo.scp> holds "<uid> <video>" lines (landmark_todo.scp of a preparation);
# <dir> gets <uid>.npy, detected.scp and failed.txt. The detector
# (espnet_msrs/bin/detect_landmarks.py, MediaPipe Face Mesh) runs in its own
# environment, which local/make_landmark_env.sh creates on first use. Videos
# without any face are listed in failed.txt and kept (all-NaN landmarks), so
# stage 2 reports them again by name.
set -euo pipefail

log() {
    local fname=${BASH_SOURCE[1]##*/}
    echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*"
}

main_root=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
todo=                   # "<uid> <video>" lines
out_dir=                # landmark files, detected.scp, failed.txt
nj=4                    # parallel detection processes
landmark_env=${main_root}/.venv_landmarks   # the detector's environment
make_landmark_env=true  # create landmark_env if missing
help_message="Usage: $0 --todo <todo.scp> --out_dir <dir> [--nj ${nj}] [--landmark_env DIR] [--make_landmark_env true|false]"
. "${main_root}/local/parse_options.sh"
[ -n "${todo}" ] && [ -n "${out_dir}" ] || { echo "${help_message}" >&2; exit 2; }

log "Face landmarks (MediaPipe Face Mesh) for $(wc -l < "${todo}") video(s): ${todo} -> ${out_dir}"
if [ ! -x "${landmark_env}/bin/python" ]; then
    if [ "${make_landmark_env}" = true ]; then
        "${main_root}/local/make_landmark_env.sh" "${landmark_env}"
    else
        log "Error: no landmark environment at ${landmark_env}: run ${main_root}/local/make_landmark_env.sh ${landmark_env}"
        exit 1
    fi
fi
"${landmark_env}/bin/python" "${main_root}/espnet_msrs/bin/detect_landmarks.py" \
    --video_scp "${todo}" --out_dir "${out_dir}" --out_scp "${out_dir}/detected.scp" \
    --nj "${nj}" --allow_failures true
if [ -s "${out_dir}/failed.txt" ]; then
    log "Warning: $(wc -l < "${out_dir}/failed.txt") video(s) without any face: ${out_dir}/failed.txt"
fi
