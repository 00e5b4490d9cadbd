# path.sh — environment of the espnet_msrs recipes (sourced by avsr.sh).
# MAIN_ROOT is the repository root (recipes live in egs2/<corpus>/<task>/; this
# file is egs2/TEMPLATE/avsr1/path.sh, reached through the recipes' symlinks,
# so a recipe copied elsewhere with symlinks still finds the repository).
MAIN_ROOT=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../../.." && pwd)
export MAIN_ROOT
# The project's Python environment (made by `make env` / `make demo`), if present.
if [ -x "${MAIN_ROOT}/.venv/bin/python3" ]; then
    export PATH="${MAIN_ROOT}/.venv/bin:${PATH}"
fi
export PYTHONPATH="${MAIN_ROOT}${PYTHONPATH:+:${PYTHONPATH}}"
export PYTHONIOENCODING=UTF-8
# Threads: parallel jobs get OMP_NUM_THREADS = cores / jobs from avsr.sh;
# training uses all cores unless you export OMP_NUM_THREADS here.
