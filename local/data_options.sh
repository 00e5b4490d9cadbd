# local/data_options.sh — the prologue of a recipe's local/data.sh (sourced
# from the recipe directory after the script's option defaults and
# help_message): the environment (path.sh), the options given
# (local/parse_options.sh), the corpus paths (db.sh; a value in the
# environment wins) and ${python}. MAIN_ROOT is the repository (this file's
# parent) unless path.sh set it.
if [ ! -f ./db.sh ]; then
    echo "$0: run from the recipe directory (no db.sh in $(pwd))" >&2
    exit 1
fi
[ -f ./path.sh ] && . ./path.sh
MAIN_ROOT=${MAIN_ROOT:-$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)}
. "${MAIN_ROOT}/local/parse_options.sh"
. ./db.sh
python=${PYTHON:-python3}
