# local/data_options.sh — the prologue of a recipe's local/data.sh (sourced
# from the recipe directory after the script's option defaults and
# help_message): the environment (path.sh), the options given
# (local/parse_options.sh), the corpus paths (db.sh; a value in the
# environment wins) and ${python}.
if [ ! -f ./db.sh ] || [ ! -f ./path.sh ]; then
    echo "$0: run from the recipe directory (no db.sh/path.sh in $(pwd))" >&2
    exit 1
fi
. ./path.sh
. "${MAIN_ROOT}/local/parse_options.sh"
. ./db.sh
python=${PYTHON:-python3}
