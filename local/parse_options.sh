# local/parse_options.sh — "--name value" options of a recipe script (sourced).
#
# Every lowercase variable set before this file is sourced is an option:
#   --name value   or   --name=value     ("-" in a name is read as "_")
# --help / -h prints $help_message and exits. An unknown option, an option
# without a value or a stray argument stops the script with status 2 and a
# message on stderr. (Kaldi's utils/parse_options.sh habit; ESPnet's pip
# package does not ship Kaldi's utils.)
#
#   nj=4               # parallel jobs
#   help_message="Usage: $0 [--nj N]"
#   . "${MAIN_ROOT}/local/parse_options.sh"
while [ $# -gt 0 ]; do
    case "$1" in
        --help|-h)
            echo "${help_message:-Usage: $0 [options]}"
            exit 0
            ;;
        --*=*)
            _opt_name=${1%%=*}; _opt_value=${1#*=}; shift
            ;;
        --*)
            if [ $# -lt 2 ]; then
                echo "$0: option $1 needs a value (see --help)" >&2
                exit 2
            fi
            _opt_name=$1; _opt_value=$2; shift 2
            ;;
        *)
            echo "$0: unexpected argument '$1'; options look like --name value (see --help)" >&2
            exit 2
            ;;
    esac
    _opt_name=${_opt_name#--}; _opt_name=${_opt_name//-/_}
    if [[ ! "${_opt_name}" =~ ^[a-z][a-z0-9_]*$ ]] || [ -z "${!_opt_name+set}" ]; then
        echo "$0: unknown option --${_opt_name} (see --help)" >&2
        exit 2
    fi
    printf -v "${_opt_name}" '%s' "${_opt_value}"
done
unset _opt_name _opt_value
