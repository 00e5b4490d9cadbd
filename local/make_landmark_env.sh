#!/usr/bin/env bash
# Create the virtual environment of the offline face-landmark detector
# (espnet_msrs/bin/detect_landmarks.py: MediaPipe Face Mesh -> iBUG 68 points).
#
# mediapipe 0.10.21 ships its face detection and face mesh models in the wheel
# (nothing is downloaded at run time) but pins numpy<2, while the project's
# .venv has numpy 2: the detector therefore gets its own environment.
# About 1 GB on disk (mediapipe pulls opencv-contrib, jax, matplotlib).
#
# Usage: local/make_landmark_env.sh [<env dir>]   (default: <repo>/.venv_landmarks)
# Python: $LANDMARK_PYTHON, else python3.11 / python3.12 / python3.10 / python3
# (mediapipe 0.10.21 has wheels for CPython 3.9-3.12 on Linux x86_64/aarch64
# and macOS).
set -euo pipefail

log() {
    local fname=${BASH_SOURCE[1]##*/}
    echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*"
}

if [ $# -gt 1 ] || [ "${1:-}" = "--help" ] || [ "${1:-}" = "-h" ]; then
    echo "Usage: $0 [<env dir>]   (default: <repo>/.venv_landmarks)"
    exit 1
fi
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "${here}/.." && pwd)
env_dir=${1:-${repo}/.venv_landmarks}
mediapipe_pin="mediapipe==0.10.21"
numpy_pin="numpy<2"

if [ -x "${env_dir}/bin/python" ] && \
    "${env_dir}/bin/python" -c "import mediapipe, numpy, cv2; assert mediapipe.__version__ == '0.10.21'" 2>/dev/null; then
    log "Landmark environment already present: ${env_dir}"
    exit 0
fi

python=${LANDMARK_PYTHON:-}
if [ -z "${python}" ]; then
    for candidate in python3.11 python3.12 python3.10 python3; do
        if command -v "${candidate}" >/dev/null 2>&1 && \
            "${candidate}" -c 'import sys, venv; assert (3, 9) <= sys.version_info[:2] <= (3, 12)' 2>/dev/null; then
            python=${candidate}
            break
        fi
    done
fi
if [ -z "${python}" ]; then
    log "Error: no Python 3.9-3.12 with the venv module found (mediapipe 0.10.21 has no wheel for other versions); set LANDMARK_PYTHON"
    exit 1
fi

log "Creating ${env_dir} with $(${python} --version 2>&1): ${mediapipe_pin} '${numpy_pin}'"
"${python}" -m venv "${env_dir}"
"${env_dir}/bin/python" -m pip install --disable-pip-version-check -q "${mediapipe_pin}" "${numpy_pin}"
"${env_dir}/bin/python" -c "import mediapipe as mp, numpy; mp.solutions.face_mesh.FaceMesh().close(); print('mediapipe', mp.__version__, 'numpy', numpy.__version__)"
log "Landmark environment ready: ${env_dir}"
