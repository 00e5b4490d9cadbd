# local/run_options.sh — what the recipes' run.sh share (sourced by run.sh).
#
# A run.sh sets its defaults, then:
#   scan_run_options modality method retrain_mode nj -- "$@"
#   set -- ${run_args[@]+"${run_args[@]}"}
#   paper_configs train_vsr_large train_avsr train_asr   # or its own choice
#   ...
#   run_help                      # prints the recipe's part of --help
#   ./avsr.sh <recipe options> "$@"
# (paper_recipe does the first three for the LRS3 and VoxCeleb2 recipes.)
#
# Options given to run.sh always reach avsr.sh ("$@" last wins); the ones
# named in scan_run_options are also read here because the recipe derives
# other defaults from them (configs from --modality/--method, data options
# from --modality/--nj). --local_data_opts is appended to the recipe's own
# data options instead of replacing them. With --help, run_help prints the
# recipe's header, how configs are chosen and the data options (stage 1),
# and avsr.sh then prints every option with the value this run would use.

want_help=false

# scan_run_options <name>... -- "$@": sets each named variable to the last
# value given in the arguments, appends every --local_data_opts value to
# ${local_data_opts}, and leaves the arguments without --local_data_opts in
# the array run_args.
scan_run_options() {
    local names=() name value
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do names+=("$1"); shift; done
    [ $# -gt 0 ] && shift
    local given=()
    run_args=()
    while [ $# -gt 0 ]; do
        case "$1" in
            --help|-h) want_help=true; run_args+=("$1"); shift; continue ;;
            --*=*) name=${1%%=*}; value=${1#*=}; given=("$1"); shift ;;
            --*) name=$1; value=${2:-}; given=("$1" "${value}"); shift; [ $# -gt 0 ] && shift ;;
            *) run_args+=("$1"); shift; continue ;;
        esac
        name=${name#--}; name=${name//-/_}
        if [ "${name}" = local_data_opts ]; then
            local_data_opts+=" ${value}"
            continue
        fi
        run_args+=("${given[@]}")
        if [[ " ${names[*]} " == *" ${name} "* ]]; then
            printf -v "${name}" '%s' "${value}"
        fi
    done
}

# paper_configs <video prefix> <av prefix> <audio prefix>: asr_config and
# search_config from conf/tuning/ (the paper configs, README "Paper
# configurations") for ${modality}, ${method} and ${retrain_mode}:
#   --method msrs        <prefix>_msrs_search.yaml (stage 8) + <prefix>_msrs_<retrain_mode>.yaml
#   --method lr_sms      <prefix>_lr_sms_m010-020_f020-040.yaml
#   --method layerscale  <prefix>_layerscale.yaml
#   --method dense       <prefix>.yaml
# ${method} defaults to msrs for video/av and lr_sms for audio. A file that
# does not exist is reported (give --asr_config/--search_config instead).
paper_configs() {
    local prefix
    case "${modality}" in
        video) prefix=$1; method=${method:-msrs} ;;
        av) prefix=$2; method=${method:-msrs} ;;
        audio) prefix=$3; method=${method:-lr_sms} ;;
        *) prefix=$2 ;;   # avsr.sh reports the bad value
    esac
    config_rule="--modality/--method/--retrain_mode choose conf/tuning/<model>_<method>.yaml,
  <model> = $1 (--modality video), $2 (av), $3 (audio); --method msrs
  adds <model>_msrs_search.yaml (stage 8) and retrains with <model>_msrs_<retrain_mode>.yaml"
    search_config=
    case "${method}" in
        msrs)
            search_config=conf/tuning/${prefix}_msrs_search.yaml
            asr_config=conf/tuning/${prefix}_msrs_${retrain_mode/grad_masked/gradmask}.yaml ;;
        lr_sms) asr_config=conf/tuning/${prefix}_lr_sms_m010-020_f020-040.yaml ;;
        layerscale) asr_config=conf/tuning/${prefix}_layerscale.yaml ;;
        *) asr_config=conf/tuning/${prefix}.yaml ;;
    esac
    local c
    for c in asr_config search_config; do
        if [ -n "${!c}" ] && [ ! -f "${!c}" ]; then
            echo "$0: no default ${c} for --modality ${modality} --method ${method} (${!c} does not exist); give --${c}" >&2
            printf -v "${c}" '%s' ""
        fi
    done
}

# paper_recipe "$@": the options of the paper recipes (LRS3, VoxCeleb2), read
# from the arguments over these defaults; configs by paper_configs; the
# avsr.sh options they imply in the array paper_args, the rest of the
# arguments in run_args.
paper_recipe() {
    modality=av          # audio (ASR) | video (VSR) | av (AVSR)
    method=              # default: msrs (video, av), lr_sms (audio)
    retrain_mode=sparse  # MSRS retraining: dense | sparse | grad_masked
    nj=4                 # data preparation jobs
    scan_run_options modality method retrain_mode nj -- "$@"
    paper_configs train_vsr_large train_avsr train_asr
    paper_args=(--modality "${modality}" --method "${method}" --retrain_mode "${retrain_mode}"
                --nj "${nj}" --token_type bpe --bpemode unigram --nbpe 5000
                --asr_config "${asr_config}" --search_config "${search_config}"
                --inference_config conf/decode_asr.yaml)
}

# run_help: with --help, the recipe's part of the help (avsr.sh prints the rest).
run_help() {
    ${want_help} || return 0
    sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0"
    echo
    if [ -n "${config_rule:-}" ]; then
        echo "Configs: ${config_rule}."
        echo "  --asr_config/--search_config choose any other file. This run:"
        echo "  --asr_config ${asr_config:-(none)} --search_config ${search_config:-(none)}"
        echo
    fi
    echo "Data preparation (stage 1, local/data.sh): its options, given here as"
    echo "--local_data_opts \"--name value ...\" (added to the recipe's own; the value"
    echo "avsr.sh gets is listed below). Corpus paths: db.sh (or the environment)."
    local/data.sh --help | sed 's/^/  /'
    echo
    echo "Stage options (avsr.sh), with the values of this run:"
}
