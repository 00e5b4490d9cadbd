#!/usr/bin/env bash
# avsr.sh — the shared 13-stage recipe of espnet_msrs (ASR / VSR / AVSR with
# MSRS, LR-SMS, LayerScale or dense training). Recipes call it from their
# run.sh with their corpus options and "$@" last, like ESPnet's asr.sh.
# Stage layout (DESIGN.md §4; the same numbers in every recipe):
#    1 data preparation (local/data.sh)            -> data/<set>
#    2 mouth ROI crop (96x96 grey mp4) + 16 kHz     -> dump/prep/<set>
#    3 format + validation                          -> dump/raw/org/<set>
#    4 remove too long / too short utterances       -> dump/raw/<set>
#    5 token list (SentencePiece unigram)           -> data/token_list/
#    6 babble noise + noisy test sets (audio, av)   -> dump/noise, dump/raw/<test>_snr<snr>
#    7 collect stats (ESPnet shape files)           -> exp/asr_stats_<modality>_<token>
#    8 MSRS mask search (--method msrs)             -> exp/<tag>/mask_search
#    9 (re)training; SET/RigL/GMP/CHASE train here  -> exp/<tag>/train
#   10 checkpoint averaging                         -> exp/<tag>/train/<inference_asr_model>
#   11 decoding (ESPnet beam search, CTC/attention) -> exp/<tag>/decode_<inference_tag>/<set>
#   12 scoring: WER/CER per set and SNR             -> exp/<tag>/RESULTS.md, RESULTS.md
#   13 packing for the ESPnet model zoo + a check   -> exp/<tag>/packed/model.zip
#
# Every stage logs what it reads and writes, can run alone (--stage N
# --stop_stage N) and is idempotent: a finished stage leaves a ".done" marker
# holding a signature of everything its output depends on (options, configs,
# the markers of the stages it reads, and input files: db.sh and the corpus
# files, label and landmark files it names, the media listed in the data
# directories, the model decoded) and the size and time of the artifacts it
# vouches for, which were load-checked when it was written. A stage is
# skipped while both hold and redone (after removing stale outputs) when
# either changed. One run writes an experiment at a time: stages 8-13 lock
# exp/<tag>, stages 1-7 the shared data (dump/); a second run stops and names
# the process holding the lock (a lock left by a dead process is taken over).
# All paths are relative to the recipe directory (run.sh changes into it), so
# ./run.sh works from any cwd.
#
# Scaling out (stages 8 and 9 use ESPnet's distributed training):
#   one GPU:            --ngpu 1
#   N GPUs, one node:   --ngpu N                       (ESPnet spawns N DDP workers)
#   N CPU processes:    --dist_launcher torchrun --dist_nproc_per_node N --ngpu 0
#                       (torch.distributed.run + gloo; used to test DDP on a laptop)
#   M nodes x N GPUs:   --dist_launcher torchrun --num_nodes M --ngpu N \
#                       --node_rank K --master_addr HOST --master_port PORT
#                       (run the same command on every node, K = 0 .. M-1), or
#                       --dist_launcher slurm --num_nodes M --ngpu N inside an
#                       salloc/sbatch allocation (srun starts one task per GPU;
#                       ranks come from SLURM_PROCID/SLURM_LOCALID, rendezvous
#                       through a file in exp/, which must be on a shared disk).
#   Batch sizes in the configs are global: ESPnet divides batch_bins by the
#   world size, so results stay comparable when scaling.
set -euo pipefail

log() {
    local fname=${BASH_SOURCE[1]##*/}
    echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*"
}
die() {
    log "ERROR: $*" >&2
    exit 1
}
SECONDS=0
_argv="$*"
min() {
    local a=$1 b=$2
    if [ "$a" -lt "$b" ]; then echo "$a"; else echo "$b"; fi
}

# ----------------------------------------------------------------- options
# General
stage=1              # First stage to run.
stop_stage=13        # Last stage to run.
ngpu=1               # GPUs per node (0: CPU).
num_nodes=1          # Nodes for training (stages 8, 9).
dist_launcher=local  # local | torchrun | slurm (see "Scaling out" above).
dist_nproc_per_node= # Processes per node with torchrun/slurm (default: ngpu, or 1 on CPU).
node_rank=0          # This node's rank (torchrun, multi-node).
master_addr=localhost # Rendezvous host (torchrun).
master_port=29500    # Rendezvous port (torchrun).
nj=4                 # Parallel jobs for data preparation and collect stats.
inference_nj=4       # Parallel decoding jobs.
gpu_inference=false  # Decode on GPU.
python=python3       # Python interpreter (path.sh puts the project's .venv first).
dumpdir=dump         # Features and formatted data.
expdir=exp           # Experiments.
verbose=true         # Echo progress lines (epochs, ETA) of long jobs to the console.

# Data
local_data_opts=     # Options of local/data.sh (stage 1; ./local/data.sh --help).
train_set=           # Training set name (data/<train_set>).
valid_set=           # Validation set name.
test_sets=           # Test set names (space separated).
official_test_sizes= # "<set>=<utterances> ..." of the official test sets (RESULTS.md compares).
modality=av          # audio (ASR) | video (VSR) | av (AVSR).
audio_fs=16000       # Audio sampling rate after stage 2 (Hz).
video_fps=25         # Video frame rate expected at stage 3.
roi_size=96          # Side of the mouth ROI written at stage 2 (pixels).
roi_opts=            # Extra options of espnet_msrs.bin.crop_mouth.
av_tolerance=2       # Max |audio frames - video frames| at 25 fps (stage 3).
video_format=mp4     # Stage 3 dump of the ROIs: mp4 (as cropped) | npy (decoded arrays: fast to load, ~9 KB/frame).
strict_validation=false # Stage 3 fails on any bad utterance instead of excluding it.
min_dur=0.3          # Stage 4: shortest training utterance (s).
max_dur=20.0         # Stage 4: longest training utterance (s).

# Tokens
token_type=bpe       # bpe | char | word.
nbpe=5000            # SentencePiece vocabulary size.
bpemode=unigram      # unigram | bpe | char | word (SentencePiece model type).
bpe_opts=            # Extra SentencePiece training options (e.g. --hard_vocab_limit=false).
bpe_char_cover=1.0   # SentencePiece character coverage.
oov="<unk>"; blank="<blank>"; sos_eos="<sos/eos>"

# Noise (stage 6; NOISEX_BABBLE in db.sh: a babble recording used instead of synthetic babble)
snrs="-7.5 -2.5 2.5 7.5 12.5" # SNRs (dB) of the noisy test sets.
noise_num_utts=30    # Utterances summed into each synthetic babble noise.
noise_seed=0         # Seed of the synthetic babble and of the mixing offsets.

# Training
method=msrs          # msrs | lr_sms | dense | layerscale | set | rigl | gmp | chase (the last
                     # four: sparse-training baselines of MSRS Table 4, stage 9 only).
sparsity=0.4         # Target sparsity of set | rigl | gmp | chase over the masked weights
                     # (MSRS Table 4: 0.4); their other options: --asr_args "--msrs_conf key=value".
retrain_mode=sparse  # MSRS retraining: dense | sparse | grad_masked.
asr_config=          # Training config (stage 9; MSRS: the retraining config).
search_config=       # MSRS mask-search config (stage 8).
asr_args=            # Extra options of the training command (stages 8, 9).
search_args=         # Extra options of the mask search only (stage 8).
search_data_fraction=1.0 # Stage 8 searches on this fraction of the training data (MSRS 703 M: 0.3).
search_data_seed=0   # Seed choosing that fraction (the same subset for the same seed).
init_frontend=       # Model .pth of another experiment whose frontend.* initialises this run's
                     # frontend (MSRS Table 4 "Frontend" rows): stage 8 for msrs, stage 9 otherwise.
tag=                 # Experiment name (default: <modality>_<method>[_<retrain_mode>]).
stats_dir=           # Collect-stats dir (default: exp/asr_stats_<modality>_<token>).
resume=true          # Resume interrupted training from exp/.../checkpoint.pth.
nbest_average=       # Stage 10: average this many best checkpoints (default: keep_nbest_models;
                     # set | rigl | gmp | chase, whose masks change: the last epoch's model).
best_criterion="valid acc max" # Stage 10 criterion (phase key max|min).

# Decoding
inference_config=    # Decoding config (beam size, ctc_weight, ...).
inference_args=      # Extra decoding options.
inference_tag=       # Decode dir suffix (default: <inference_config name>_<model name>).
inference_asr_model=valid.acc.ave.pth # Model file used for decoding and packing.
scorer=auto          # auto (sclite if installed, else jiwer) | sclite | jiwer.

_print_help() {
    cat <<EOF
Usage: $0 --train_set <set> --valid_set <set> --test_sets "<sets>" --asr_config <yaml> [options]

The shared 13-stage AVSR/VSR/ASR recipe of espnet_msrs (see the header of
egs2/TEMPLATE/avsr1/avsr.sh for the stages and for scaling out). Options, with
the value this run would use (the recipe's run.sh and the command line set them):
  --stage --stop_stage      first/last stage to run (${stage}, ${stop_stage})
  --ngpu                    GPUs per node, 0 = CPU (${ngpu})
  --num_nodes               training nodes (${num_nodes})
  --dist_launcher           local | torchrun | slurm (${dist_launcher})
  --dist_nproc_per_node     processes per node for torchrun/slurm (ngpu, or 1 on CPU)
  --node_rank --master_addr --master_port   torchrun rendezvous (${node_rank}, ${master_addr}, ${master_port})
  --nj                      data preparation / collect-stats jobs (${nj})
  --inference_nj            decoding jobs (${inference_nj})
  --gpu_inference           decode on GPU (${gpu_inference})
  --python                  interpreter (${python})
  --dumpdir --expdir        output roots (${dumpdir}, ${expdir})
  --verbose                 echo progress of long jobs to the console (${verbose})
 Data:
  --local_data_opts         options of local/data.sh (stage 1): "${local_data_opts}"
  --train_set --valid_set --test_sets   data set names under data/ (${train_set}, ${valid_set}, "${test_sets}")
  --official_test_sizes     official sizes of the test sets ("${official_test_sizes}")
  --modality                audio | video | av (${modality})
  --audio_fs --video_fps    expected audio rate / video frame rate (${audio_fs}, ${video_fps})
  --roi_size --roi_opts     mouth ROI side and crop_mouth options (${roi_size})
  --av_tolerance            max audio/video length difference in frames (${av_tolerance})
  --video_format            mp4 | npy: how stage 3 dumps the ROIs (${video_format})
  --strict_validation       stage 3 fails on any bad utterance (${strict_validation})
  --min_dur --max_dur       stage 4 duration limits in seconds (${min_dur}, ${max_dur})
 Tokens:
  --token_type              bpe | char | word (${token_type})
  --nbpe --bpemode          SentencePiece size and type (${nbpe}, ${bpemode})
  --bpe_opts                extra SentencePiece training options
 Noise:
  --snrs                    SNRs (dB) of the noisy test sets ("${snrs}")
  --noise_num_utts --noise_seed   synthetic babble (${noise_num_utts}, ${noise_seed});
                            NOISEX_BABBLE in db.sh: a recording instead (${NOISEX_BABBLE:-unset})
 Training:
  --method                  msrs | lr_sms | dense | layerscale | set | rigl | gmp | chase (${method})
  --sparsity                target sparsity of set | rigl | gmp | chase (${sparsity})
  --retrain_mode            MSRS retraining: dense | sparse | grad_masked (${retrain_mode})
  --asr_config              training (MSRS: retraining) config (${asr_config})
  --search_config           MSRS mask-search config (${search_config})
  --asr_args --search_args  extra training options (all / mask search only) ("${asr_args}", "${search_args}")
                            (e.g. --asr_args "--use_amp true": ESPnet's 16-bit mixed precision on CUDA)
  --search_data_fraction --search_data_seed   stage 8 on part of the training data (${search_data_fraction}, ${search_data_seed})
  --init_frontend           model .pth whose frontend initialises this run's frontend
  --tag                     experiment name, default <modality>_<method>[_<retrain_mode>] (${tag:-${modality}_${method}$([ "${method}" = msrs ] && echo "_${retrain_mode}")})
  --stats_dir               collect-stats directory
  --resume                  resume interrupted training (${resume})
  --nbest_average           checkpoints averaged at stage 10 ($([ -n "${nbest_average}" ] && echo "${nbest_average}" || case ${method} in (set|rigl|gmp|chase) echo "none: ${method} changes its masks, the last epoch's model";; (*) echo keep_nbest_models;; esac))
  --best_criterion          "phase key max|min" (${best_criterion})
 Decoding and scoring:
  --inference_config --inference_args --inference_tag   (${inference_config}, "${inference_args}", ${inference_tag})
  --inference_asr_model     model file for decoding/packing (${inference_asr_model})
  --scorer                  auto | sclite | jiwer (${scorer})
  --help                    this message
EOF
}

# ------------------------------------------------------------ option parser
# "--name value" or "--name=value"; "-" in names is read as "_"; every name
# must be one of the variables above; later occurrences win.
_want_help=false
_declared_options=" $(sed -n '/^# ------.* options$/,/^_print_help()/p' "${BASH_SOURCE[0]}" \
    | grep -oE '^[a-z_0-9]+=' | tr -d '=' | tr '\n' ' ')oov blank sos_eos "
while [ $# -gt 0 ]; do
    case "$1" in
        --help|-h)  # printed once every option is read: it shows their values
            _want_help=true; shift; continue
            ;;
        --*=*)
            _name=${1%%=*}; _value=${1#*=}; shift
            ;;
        --*)
            _name=$1
            if [ $# -lt 2 ]; then
                echo "$0: option ${_name} needs a value (see --help)" >&2
                exit 2
            fi
            _value=$2; shift 2
            ;;
        *)
            echo "$0: unexpected argument '$1'; options look like --name value (see --help)" >&2
            exit 2
            ;;
    esac
    _name=${_name#--}; _name=${_name//-/_}
    if [[ ! "${_declared_options}" == *" ${_name} "* ]]; then
        echo "$0: unknown option --${_name} (see --help for the list)" >&2
        exit 2
    fi
    printf -v "${_name}" '%s' "${_value}"
done
unset _name _value

[ -f ./path.sh ] && . ./path.sh
[ -f ./cmd.sh ] && . ./cmd.sh
: "${train_cmd:=}"; : "${decode_cmd:=}"; : "${cpu_cmd:=}"
# db.sh: the corpus paths (read by local/data.sh) and NOISEX_BABBLE (stage 6);
# a value in the environment wins.
NOISEX_BABBLE=${NOISEX_BABBLE:-$(if [ -f ./db.sh ]; then . ./db.sh; echo "${NOISEX_BABBLE:-}"; fi)}
if ${_want_help}; then
    _print_help
    exit 0
fi

# ----------------------------------------------------------- check options
_one_of() {  # _one_of <option name> <value> <allowed...>
    local name=$1 value=$2; shift 2
    for a in "$@"; do [ "${value}" = "${a}" ] && return 0; done
    echo "$0: --${name}=${value} is not allowed; use one of: $*" >&2
    exit 2
}
_one_of modality "${modality}" audio video av
_one_of method "${method}" msrs lr_sms dense layerscale set rigl gmp chase
_one_of retrain_mode "${retrain_mode}" dense sparse grad_masked
_one_of token_type "${token_type}" bpe char word
_one_of dist_launcher "${dist_launcher}" local torchrun slurm
_one_of scorer "${scorer}" auto sclite jiwer
_one_of video_format "${video_format}" mp4 npy
for _v in stage stop_stage ngpu num_nodes nj inference_nj nbpe; do
    [[ "${!_v}" =~ ^[0-9]+$ ]] || { echo "$0: --${_v}=${!_v} must be a non-negative integer" >&2; exit 2; }
done
[ -n "${train_set}" ] || { echo "$0: --train_set is required" >&2; exit 2; }
if [ -n "${init_frontend}" ] && [ ! -f "${init_frontend}" ]; then
    echo "$0: --init_frontend ${init_frontend}: no such file (give a model .pth, e.g. exp/<tag>/train/valid.acc.ave.pth)" >&2
    exit 2
fi
[ -n "${valid_set}" ] || { echo "$0: --valid_set is required" >&2; exit 2; }
[ -n "${test_sets}" ] || { echo "$0: --test_sets is required" >&2; exit 2; }

uses_audio=false; uses_video=false
[ "${modality}" != video ] && uses_audio=true
[ "${modality}" != audio ] && uses_video=true

if [ -z "${tag}" ]; then
    tag=${modality}_${method}
    [ "${method}" = msrs ] && tag+=_${retrain_mode}
fi
if [ "${token_type}" = bpe ]; then
    token_dir=data/token_list/${token_type}_${bpemode}${nbpe}
    bpemodel=${token_dir}/bpe.model
    token_name=${token_type}${nbpe}
else
    token_dir=data/token_list/${token_type}
    bpemodel=none
    token_name=${token_type}
fi
token_list=${token_dir}/tokens.txt
[ -z "${stats_dir}" ] && stats_dir=${expdir}/asr_stats_${modality}_${token_name}
exp_tag=${expdir}/${tag}
search_dir=${exp_tag}/mask_search
train_dir=${exp_tag}/train
if [ -z "${inference_tag}" ]; then
    if [ -n "${inference_config}" ]; then
        inference_tag=$(basename "${inference_config}" .yaml)
    else
        inference_tag=default
    fi
    inference_tag+=_$(echo "${inference_asr_model}" | sed -e 's/\.pth$//' -e 's/\./_/g')
fi
decode_root=${exp_tag}/decode_${inference_tag}
noise_dir=${dumpdir}/noise
babble_train=${noise_dir}/babble_train.wav
read -r -a _snrs <<< "${snrs}"
read -r -a _test_sets <<< "${test_sets}"
all_sets="${train_set} ${valid_set} ${test_sets}"

# Noisy copies of the test sets (stage 6) for audio-based modalities.
noisy_sets=""
if ${uses_audio}; then
    for _t in "${_test_sets[@]}"; do
        for _s in "${_snrs[@]}"; do noisy_sets+=" ${_t}_snr${_s}"; done
    done
fi
decode_sets="${test_sets}${noisy_sets}"

# --------------------------------------------------------------- helpers
# Signatures: a stage is done when the first line of its marker is the
# signature of its options, configs, input files and the markers of the
# stages it reads, and the artifacts the marker lists ("artifact <size>
# <mtime> <path>", load-checked when it was written) are unchanged.
_sig() { printf '%s\n' "$@" | sha1sum | cut -c1-16; }
_inputs_sig() {  # fingerprint of files, trees and scp-listed media (espnet_msrs.utils.fingerprint)
    "${python}" -m espnet_msrs.bin.fingerprint inputs "$@"
}
_fsig() {  # content hash of small files (configs); "-" for missing ones
    local f
    for f in "$@"; do
        if [ -f "$f" ]; then sha1sum < "$f" | cut -c1-16; else echo "-"; fi
    done
}
_msig() {  # contents of markers (upstream signatures)
    local f
    for f in "$@"; do
        if [ -f "$f" ]; then cat "$f"; else echo "missing:$f"; fi
    done
}
_is_done() {  # _is_done <marker> <signature>
    local marker=$1 kind size mtime path
    [ -f "${marker}" ] && [ "$(head -n 1 "${marker}")" = "$2" ] || return 1
    while read -r kind size mtime path; do
        [ "${kind}" = artifact ] || continue
        if [ "$(stat -L -c '%s %Y' "${path}" 2>/dev/null)" != "${size} ${mtime}" ]; then
            log "${path} changed or is missing since ${marker} was written"
            return 1
        fi
    done < <(tail -n +2 "${marker}")
}
# --init_frontend as ESPnet's --init_param (frontend.* -> frontend.*), and its
# size:mtime for the stage signatures (nothing when unset: signatures of
# runs without it are unchanged).
_frontend_init=()
_frontend_sig=()
if [ -n "${init_frontend}" ]; then
    _frontend_init=(--init_param "${init_frontend}:frontend:frontend")
    _frontend_sig=("${init_frontend}:$(stat -L -c '%s:%Y' "${init_frontend}")")
fi
_mark_done() {  # _mark_done <marker> <signature> [artifact...]: load-checks the artifacts first
    local marker=$1 sig=$2 f
    shift 2
    if [ $# -gt 0 ] && ! "${python}" -m espnet_msrs.bin.fingerprint verify "$@"; then
        die "an output of this stage is incomplete or does not load (above); not marking ${marker} done"
    fi
    mkdir -p "$(dirname "${marker}")"
    { echo "${sig}"; for f in "$@"; do echo "artifact $(stat -L -c '%s %Y' "$f") $f"; done; } \
        > "${marker}.tmp"
    mv "${marker}.tmp" "${marker}"
}
_existing() {  # the arguments that are existing files
    local f
    for f in "$@"; do [ -f "$f" ] && echo "$f"; done
    return 0
}

# One writer at a time: _lock <dir> takes <dir>/.lock (PID, host, time,
# command) until this script exits. Held by a live process: stop and name
# it. Left by a process that is gone (same host): take it over.
_locks=()
_lock() {
    local dir=$1 lock=$1/.lock pid host held
    mkdir -p "${dir}"
    until ( set -o noclobber
            echo "$$ $(hostname) $(date '+%Y-%m-%dT%H:%M:%S') $0 ${_argv}" > "${lock}" ) 2>/dev/null; do
        held=$(cat "${lock}" 2>/dev/null) || continue
        read -r pid host _ <<< "${held}"
        if [ "${host}" = "$(hostname)" ] && ! kill -0 "${pid}" 2>/dev/null && [ ! -d "/proc/${pid}" ]; then
            log "Taking over ${lock}: process ${pid} that held it is not running any more"
            [ "$(cat "${lock}" 2>/dev/null)" = "${held}" ] && rm -f "${lock}"
            continue
        fi
        die "${dir} is being written by process ${pid} on ${host} (${lock}: ${held}). Wait for it to finish or stop it; remove ${lock} only if that process is gone."
    done
    _locks+=("${lock}")
}
_unlock() {
    local lock
    for lock in ${_locks[@]+"${_locks[@]}"}; do
        [ "$(cut -d' ' -f1 "${lock}" 2>/dev/null)" = "$$" ] && rm -f "${lock}"
    done
    return 0
}
trap _unlock EXIT

# Output of a long job goes to its log; with --verbose the progress lines
# (epochs, ETA, stage summaries) are echoed to the console as well.
_progress_re='(progress |[0-9]+epoch results|Estimated time|epoch started|[Dd]one[:,]? |mask search|ERROR|Error|Traceback|[a-zA-Z]+Error:)'
_run() {  # _run <log> <command...>
    local logfile=$1; shift
    mkdir -p "$(dirname "${logfile}")"
    echo "# $*" > "${logfile}"
    echo "# started at $(date)" >> "${logfile}"
    local rc=0
    if ${verbose}; then
        set +e
        "$@" >> "${logfile}" 2>&1 &
        local pid=$!
        tail -n +3 -F --pid="${pid}" "${logfile}" 2>/dev/null \
            | grep --line-buffered -E "${_progress_re}" | grep --line-buffered -v '^\[nltk_data\]' \
            | sed -u -e 's/^/    /' | cut -c1-220 &
        local tpid=$!
        wait "${pid}"; rc=$?
        wait "${tpid}" 2>/dev/null
        set -e
    else
        "$@" >> "${logfile}" 2>&1 || rc=$?
    fi
    echo "# ended at $(date) with status ${rc}" >> "${logfile}"
    if [ "${rc}" -ne 0 ]; then
        log "ERROR: command failed (status ${rc}); the end of ${logfile}:" >&2
        tail -n 30 "${logfile}" >&2
        exit "${rc}"
    fi
}
# _run_array <njobs> <log with JOB> <command with JOB...>: JOB=1..n in parallel.
_run_array() {
    local n=$1 logpat=$2; shift 2
    local pids=() j rc=0 failed=""
    local ncpu; ncpu=$(nproc 2>/dev/null || echo 1)
    local threads=$(( ncpu / n )); [ "${threads}" -lt 1 ] && threads=1
    for j in $(seq 1 "${n}"); do
        local logj=${logpat//JOB/${j}}
        local args=()
        local a
        for a in "$@"; do args+=("${a//JOB/${j}}"); done
        mkdir -p "$(dirname "${logj}")"
        ( echo "# ${args[*]}"; echo "# started at $(date)" ) > "${logj}"
        OMP_NUM_THREADS=${threads} MKL_NUM_THREADS=${threads} \
            "${args[@]}" >> "${logj}" 2>&1 &
        pids+=($!)
    done
    local tpid=""
    if ${verbose}; then  # the progress of job 1 stands for all of them
        tail -n +3 -F --pid="${pids[0]}" "${logpat//JOB/1}" 2>/dev/null \
            | grep --line-buffered -E "${_progress_re}" | grep --line-buffered -v '^\[nltk_data\]' \
            | sed -u -e 's/^/    [job 1] /' | cut -c1-220 &
        tpid=$!
    fi
    for j in $(seq 1 "${n}"); do
        wait "${pids[$((j - 1))]}" || { rc=$?; failed+=" ${logpat//JOB/${j}}"; }
    done
    [ -n "${tpid}" ] && { wait "${tpid}" 2>/dev/null || true; }
    if [ "${rc}" -ne 0 ]; then
        log "ERROR: job(s) failed; see${failed}" >&2
        for j in ${failed}; do tail -n 20 "${j}" >&2; done
        exit "${rc}"
    fi
}

# Data arguments of training / collect stats for a formatted set.
_train_data_opts() {  # _train_data_opts <train|valid> <dir>
    local phase=$1 dir=$2 out=()
    ${uses_audio} && out+=(--${phase}_data_path_and_name_and_type "${dir}/wav.scp,speech,sound")
    ${uses_video} && out+=(--${phase}_data_path_and_name_and_type "${dir}/video.scp,video,video")
    out+=(--${phase}_data_path_and_name_and_type "${dir}/text,text,text")
    printf '%s\n' "${out[@]}"
}
# Data arguments of decoding (VSR: the video is the "speech" input).
_infer_data_opts() {  # _infer_data_opts <dir>
    local dir=$1
    case ${modality} in
        audio) printf '%s\n' --data_path_and_name_and_type "${dir}/wav.scp,speech,sound" ;;
        video) printf '%s\n' --data_path_and_name_and_type "${dir}/video.scp,speech,video" ;;
        av) printf '%s\n' --data_path_and_name_and_type "${dir}/wav.scp,speech,sound" \
                --data_path_and_name_and_type "${dir}/video.scp,video,video" ;;
    esac
}
_token_opts() {
    printf '%s\n' --token_type "${token_type}" --token_list "${token_list}"
    [ "${token_type}" = bpe ] && printf '%s\n' --bpemodel "${bpemodel}"
    return 0
}

# The training launcher (stages 8, 9): see "Scaling out" in the header.
_train() {  # _train <log> <output dir> <training options...>
    local logfile=$1 outdir=$2; shift 2
    local nproc=${dist_nproc_per_node}
    if [ -z "${nproc}" ]; then
        if [ "${ngpu}" -gt 0 ]; then nproc=${ngpu}; else nproc=1; fi
    fi
    local dev_ngpu=0 backend=gloo
    if [ "${ngpu}" -gt 0 ]; then dev_ngpu=1; backend=nccl; fi
    local cmd=()
    case ${dist_launcher} in
        local)
            [ "${num_nodes}" -gt 1 ] && die "--num_nodes ${num_nodes} needs --dist_launcher torchrun or slurm"
            # shellcheck disable=SC2206
            cmd=(${train_cmd} "${python}" -m espnet_msrs.bin.avsr_train
                 --ngpu "${ngpu}" --multiprocessing_distributed true "$@")
            ;;
        torchrun)
            cmd=("${python}" -m torch.distributed.run
                 --nnodes "${num_nodes}" --nproc_per_node "${nproc}" --node_rank "${node_rank}"
                 --master_addr "${master_addr}" --master_port "${master_port}"
                 -m espnet_msrs.bin.avsr_train
                 --ngpu "${dev_ngpu}" --multiprocessing_distributed false
                 --dist_backend "${backend}" "$@")
            ;;
        slurm)
            command -v srun > /dev/null || die "--dist_launcher slurm needs srun (run inside salloc/sbatch)"
            local init_file; init_file=$(cd "${outdir}" && pwd)/.dist_init_$(date +%s)_$$
            cmd=(srun --export=ALL --nodes "${num_nodes}" --ntasks-per-node "${nproc}"
                 "${python}" -m espnet_msrs.bin.avsr_train
                 --ngpu "${dev_ngpu}" --multiprocessing_distributed false
                 --dist_launcher slurm --dist_backend "${backend}"
                 --dist_init_method "file://${init_file}" "$@")
            ;;
    esac
    _run "${logfile}" "${cmd[@]}"
}

# Removes a training dir whose recorded inputs differ from the current ones
# (a finished or interrupted run with other options); keeps it otherwise so
# that ESPnet's --resume continues an interrupted run.
_prepare_train_dir() {  # _prepare_train_dir <dir> <signature>
    local dir=$1 sig=$2
    if [ -f "${dir}/.inputs" ] && [ "$(cat "${dir}/.inputs")" != "${sig}" ]; then
        log "Inputs of ${dir} changed: removing the old run"
        rm -rf "${dir}"
    fi
    mkdir -p "${dir}"
    echo "${sig}" > "${dir}/.inputs"
}

_check_config() {  # _check_config <option> <file>
    [ -n "$2" ] || die "--$1 is required for this stage"
    [ -f "$2" ] || die "--$1 $2: no such file"
}

# Wall time per stage, reported at the end.
_stage_times=""; _stage_cur=""; _stage_t0=${SECONDS}
_timed() {  # _timed <stage number> (call when a stage starts; "end" at the end)
    if [ -n "${_stage_cur}" ]; then
        _stage_times+=" ${_stage_cur}:$((SECONDS - _stage_t0))s"
    fi
    _stage_cur=$1; _stage_t0=${SECONDS}
}

log "$0 ${_argv}"
log "tag=${tag} modality=${modality} method=${method}$([ "${method}" = msrs ] && echo " retrain_mode=${retrain_mode}") stages=${stage}-${stop_stage}"
if [ "${stage}" -le 7 ] && [ "${stop_stage}" -ge 1 ]; then _lock "${dumpdir}"; fi   # data/, dump/, stats
if [ "${stage}" -le 13 ] && [ "${stop_stage}" -ge 8 ]; then _lock "${exp_tag}"; fi

# Stage 1's inputs besides its options: local/ (the recipe's scripts), the
# values of db.sh's variables (the environment wins; comments do not count),
# and the files and trees that those values and --local_data_opts name
# (labels, id lists, landmark trees, corpora). NOISEX_BABBLE is stage 6's.
_stage1_sig() {
    local names values paths=() word
    names=$(grep -oE '^[A-Za-z_][A-Za-z0-9_]*=' db.sh 2>/dev/null | tr -d '=' | grep -vx NOISEX_BABBLE | sort -u || true)
    values=$(if [ -f db.sh ]; then . ./db.sh; for n in ${names}; do printf '%s=%s\n' "$n" "${!n:-}"; done; fi)
    for word in ${values//=/ } ${local_data_opts}; do
        word=${word//[\'\"]/}
        [ -e "${word}" ] && [[ "${word}" != -* ]] && paths+=("${word}")
    done
    _sig "${local_data_opts}" "${all_sets}" "${values}" \
        "$(_inputs_sig --path local ${paths[@]+"${paths[@]}"})"
}

# ================================================================= stages
if [ "${stage}" -le 1 ] && [ "${stop_stage}" -ge 1 ]; then
    _timed 1
    marker=data/.done.stage1
    if _is_done "${marker}" "$(_stage1_sig)"; then
        log "Stage 1: data preparation: done already (${marker})"
    else
        log "Stage 1: data preparation: local/data.sh ${local_data_opts} -> data/{${all_sets// /,}}"
        [ -x local/data.sh ] || die "local/data.sh not found or not executable in $(pwd)"
        eval "local/data.sh ${local_data_opts}"   # quoted values in the options stay whole
        for _s in ${all_sets}; do
            [ -f "data/${_s}/text" ] || die "local/data.sh did not write data/${_s}/text"
        done
        _mark_done "${marker}" "$(_stage1_sig)" $(for _s in ${all_sets}; do
            _existing "data/${_s}"/{text,utt2spk,wav.scp,video.scp,landmark.scp}; done)
    fi
fi

if [ "${stage}" -le 2 ] && [ "${stop_stage}" -ge 2 ]; then
    _timed 2
    # How to get landmarks, for the one warning about videos without any.
    _lm_vars=$(grep -oE '^[A-Z0-9_]*LANDMARKS' db.sh 2>/dev/null | paste -sd/ - || true)
    _landmark_hint="give a landmark tree${_lm_vars:+ (${_lm_vars} in db.sh)} or detect them with --local_data_opts \"--detector mediapipe\", then run from stage 1 again"
    for _s in ${all_sets}; do
        _src=data/${_s}; _dst=${dumpdir}/prep/${_s}
        marker=${_dst}/.done
        sig=$(_sig "${modality}" "${audio_fs}" "${roi_size}" "${roi_opts}" "$(_msig data/.done.stage1)" \
            "$(_fsig "${_src}/text" "${_src}/wav.scp" "${_src}/video.scp" "${_src}/landmark.scp")" \
            "$(_inputs_sig --scp $(_existing "${_src}"/{wav.scp,video.scp,landmark.scp}))")
        if _is_done "${marker}" "${sig}"; then
            log "Stage 2: preprocessing ${_s}: done already (${marker})"
            continue
        fi
        log "Stage 2: preprocessing: ${_src} -> ${_dst} ($(${uses_video} && echo "mouth ROI ${roi_size}x${roi_size} grey mp4, ")$(${uses_audio} && echo "audio ${audio_fs} Hz"))"
        mkdir -p "${_dst}"
        for _f in text utt2spk spk2utt; do
            [ -f "${_src}/${_f}" ] && cp "${_src}/${_f}" "${_dst}/${_f}"
        done
        if ${uses_video}; then
            [ -f "${_src}/video.scp" ] || die "${_src}/video.scp not found (modality=${modality})"
            if [ -f "${_src}/landmark.scp" ]; then
                # shellcheck disable=SC2086
                _run "${_dst}/log/crop_mouth.log" ${cpu_cmd} "${python}" -m espnet_msrs.bin.crop_mouth \
                    --video_scp "${_src}/video.scp" --landmark_scp "${_src}/landmark.scp" \
                    --out_dir "${dumpdir}/roi/${_s}" --out_scp "${_dst}/video.scp" \
                    --failed_list "${_dst}/failed_video.txt" --allow_failures true \
                    --missing_landmarks_hint "${_landmark_hint}" \
                    --crop_size "${roi_size}" --fps "${video_fps}" --nj "${nj}" ${roi_opts}
            else
                log "No ${_src}/landmark.scp: taking ${_src}/video.scp as mouth ROIs already (checked at stage 3)"
                cp "${_src}/video.scp" "${_dst}/video.scp"
                : > "${_dst}/failed_video.txt"
            fi
        fi
        if ${uses_audio}; then
            [ -f "${_src}/wav.scp" ] || die "${_src}/wav.scp not found (modality=${modality})"
            # shellcheck disable=SC2086
            _run "${_dst}/log/resample_audio.log" ${cpu_cmd} "${python}" -m espnet_msrs.bin.resample_audio \
                --wav_scp "${_src}/wav.scp" --out_dir "${dumpdir}/audio${audio_fs}/${_s}" \
                --out_scp "${_dst}/wav.scp" --failed_list "${_dst}/failed_audio.txt" \
                --allow_failures true --sample_rate "${audio_fs}" --nj "${nj}"
        fi
        _mark_done "${marker}" "${sig}" $(_existing "${_dst}"/{text,wav.scp,video.scp})
    done
fi

if [ "${stage}" -le 3 ] && [ "${stop_stage}" -ge 3 ]; then
    _timed 3
    for _s in ${all_sets}; do
        _src=${dumpdir}/prep/${_s}; _dst=${dumpdir}/raw/org/${_s}
        marker=${_dst}/.done
        sig=$(_sig "${modality}" "${audio_fs}" "${video_fps}" "${roi_size}" "${av_tolerance}" \
            "${strict_validation}" "${video_format}" "$(_msig "${_src}/.done")")
        if _is_done "${marker}" "${sig}"; then
            log "Stage 3: format and validate ${_s}: done already (${marker})"
            continue
        fi
        log "Stage 3: format and validate: ${_src} -> ${_dst} (bad utterances: ${_dst}/bad_utts.txt)"
        _failed=()
        for _f in failed_video.txt failed_audio.txt; do
            [ -f "${_src}/${_f}" ] && _failed+=(--failed_list "${_src}/${_f}")
        done
        _dump=()
        if ${uses_video} && [ "${video_format}" = npy ]; then
            _dump=(--video_dump_dir "${_dst}/video_npy")
        fi
        # shellcheck disable=SC2086
        _run "${_dst}/log/validate.log" ${cpu_cmd} "${python}" -m espnet_msrs.bin.validate_data \
            --in_dir "${_src}" --out_dir "${_dst}" --modality "${modality}" \
            --sample_rate "${audio_fs}" --fps "${video_fps}" --frame_size "${roi_size}" \
            --av_tolerance "${av_tolerance}" --strict "${strict_validation}" --nj "${nj}" \
            "${_failed[@]}" "${_dump[@]}"
        _mark_done "${marker}" "${sig}" $(_existing "${_dst}"/{text,utt2dur,wav.scp,video.scp})
    done
fi

if [ "${stage}" -le 4 ] && [ "${stop_stage}" -ge 4 ]; then
    _timed 4
    for _s in ${all_sets}; do
        _src=${dumpdir}/raw/org/${_s}; _dst=${dumpdir}/raw/${_s}
        marker=${_dst}/.done
        _min=${min_dur}; _max=${max_dur}
        if [ "${_s}" != "${train_set}" ] && [ "${_s}" != "${valid_set}" ]; then
            _min=0; _max=inf   # test sets are never filtered
        fi
        sig=$(_sig "${_min}" "${_max}" "$(_msig "${_src}/.done")")
        if _is_done "${marker}" "${sig}"; then
            log "Stage 4: length filter ${_s}: done already (${marker})"
            continue
        fi
        log "Stage 4: remove utterances shorter than ${_min}s or longer than ${_max}s: ${_src} -> ${_dst}"
        _run "${_dst}/log/filter.log" "${python}" -m espnet_msrs.bin.filter_data \
            --in_dir "${_src}" --out_dir "${_dst}" --min_dur "${_min}" --max_dur "${_max}"
        _mark_done "${marker}" "${sig}" $(_existing "${_dst}"/{text,utt2dur,wav.scp,video.scp})
    done
fi

if [ "${stage}" -le 5 ] && [ "${stop_stage}" -ge 5 ]; then
    _timed 5
    marker=${token_dir}/.done
    sig=$(_sig "${token_type}" "${nbpe}" "${bpemode}" "${bpe_opts}" "${bpe_char_cover}" \
        "$(_msig "${dumpdir}/raw/${train_set}/.done")")
    if _is_done "${marker}" "${sig}"; then
        log "Stage 5: token list: done already (${token_list})"
    else
        log "Stage 5: token list (${token_type}$([ "${token_type}" = bpe ] && echo ", SentencePiece ${bpemode} nbpe=${nbpe}")): ${dumpdir}/raw/${train_set}/text -> ${token_list}"
        mkdir -p "${token_dir}"
        cut -f 2- -d " " "${dumpdir}/raw/${train_set}/text" > "${token_dir}/train.txt"
        _tok_opts=()
        if [ "${token_type}" = bpe ]; then
            # sentencepiece's own trainer (ESPnet's spm_train is a Kaldi-style
            # utils script, not part of the pip package).
            # shellcheck disable=SC2086
            _run "${token_dir}/log/spm_train.log" "${python}" -c \
                'import sys, sentencepiece as spm; spm.SentencePieceTrainer.Train(" ".join(sys.argv[1:]))' \
                --input="${token_dir}/train.txt" --vocab_size="${nbpe}" --model_type="${bpemode}" \
                --model_prefix="${token_dir}/bpe" --character_coverage="${bpe_char_cover}" \
                --input_sentence_size=100000000 ${bpe_opts}
            _tok_opts=(--bpemodel "${bpemodel}")
        fi
        _run "${token_dir}/log/tokenize.log" "${python}" -m espnet2.bin.tokenize_text \
            --token_type "${token_type}" --input "${token_dir}/train.txt" --output "${token_list}" \
            "${_tok_opts[@]}" --field 1- --cleaner none --g2p none --write_vocabulary true \
            --add_symbol "${blank}:0" --add_symbol "${oov}:1" --add_symbol "${sos_eos}:-1"
        log "Token list: ${token_list} ($(wc -l < "${token_list}") tokens)"
        _mark_done "${marker}" "${sig}" "${token_list}" $(_existing "${bpemodel}")
    fi
fi

if [ "${stage}" -le 6 ] && [ "${stop_stage}" -ge 6 ]; then
    _timed 6
    if ! ${uses_audio}; then
        log "Stage 6: noisy test sets: skipped (modality=${modality} has no audio)"
    else
        marker=${noise_dir}/.done
        sig=$(_sig "${snrs}" "${noise_num_utts}" "${noise_seed}" "${audio_fs}" "${test_sets}" \
            "${NOISEX_BABBLE}" "$( [ -n "${NOISEX_BABBLE}" ] && _inputs_sig --path "${NOISEX_BABBLE}")" \
            "$(_msig "${dumpdir}/raw/${train_set}/.done")" \
            "$(for _t in "${_test_sets[@]}"; do _msig "${dumpdir}/raw/${_t}/.done"; done)")
        if _is_done "${marker}" "${sig}"; then
            log "Stage 6: babble noise and noisy test sets: done already (${marker})"
        else
            mkdir -p "${noise_dir}"
            if [ -n "${NOISEX_BABBLE}" ]; then
                [ -f "${NOISEX_BABBLE}" ] || die "NOISEX_BABBLE=${NOISEX_BABBLE}: no such file; set NOISEX_BABBLE in db.sh to the NOISEX-92 babble recording, or empty for synthetic babble"
                log "Stage 6: babble noise: the recording ${NOISEX_BABBLE} (NOISEX_BABBLE) at ${audio_fs} Hz -> ${babble_train} (training and every noisy test set)"
                _run "${noise_dir}/log/babble_train.log" "${python}" -m espnet_msrs.bin.make_babble \
                    --recording "${NOISEX_BABBLE}" --out "${babble_train}" --sample_rate "${audio_fs}"
            else
                log "Stage 6: synthetic babble noise (NOISEX_BABBLE unset): ${dumpdir}/raw/${train_set}/wav.scp -> ${babble_train}"
                _run "${noise_dir}/log/babble_train.log" "${python}" -m espnet_msrs.bin.make_babble \
                    --wav_scp "${dumpdir}/raw/${train_set}/wav.scp" --out "${babble_train}" \
                    --num_utts "${noise_num_utts}" --seed "${noise_seed}" --sample_rate "${audio_fs}"
            fi
            _noise_files=("${babble_train}")
            for _t in "${_test_sets[@]}"; do
                _babble=${babble_train}
                if [ -z "${NOISEX_BABBLE}" ]; then   # synthetic: babble of the test set's own utterances
                    _babble=${noise_dir}/babble_${_t}.wav
                    _run "${noise_dir}/log/babble_${_t}.log" "${python}" -m espnet_msrs.bin.make_babble \
                        --wav_scp "${dumpdir}/raw/${_t}/wav.scp" --out "${_babble}" \
                        --num_utts "${noise_num_utts}" --seed "$((noise_seed + 1))" --sample_rate "${audio_fs}"
                    _noise_files+=("${_babble}")
                fi
                log "Stage 6: noisy test sets: ${dumpdir}/raw/${_t} + ${_babble} at SNR {${snrs// /,}} dB -> ${dumpdir}/raw/${_t}_snr<SNR>"
                # shellcheck disable=SC2086
                _run "${noise_dir}/log/noisy_${_t}.log" "${python}" -m espnet_msrs.bin.make_noisy_sets \
                    --data_dir "${dumpdir}/raw/${_t}" --noise "${_babble}" --snrs ${snrs} \
                    --out_data_prefix "${dumpdir}/raw/${_t}_snr" \
                    --out_wav_prefix "${dumpdir}/noisy/${_t}_snr" --seed "${noise_seed}" --nj "${nj}"
            done
            _mark_done "${marker}" "${sig}" "${_noise_files[@]}" \
                $(for _s in ${noisy_sets}; do echo "${dumpdir}/raw/${_s}/wav.scp"; done)
        fi
    fi
fi

if [ "${stage}" -le 7 ] && [ "${stop_stage}" -ge 7 ]; then
    _timed 7
    _check_config asr_config "${asr_config}"
    marker=${stats_dir}/.done
    sig=$(_sig "${modality}" "$(_fsig "${asr_config}")" "$(_msig "${token_dir}/.done" \
        "${dumpdir}/raw/${train_set}/.done" "${dumpdir}/raw/${valid_set}/.done")")
    if _is_done "${marker}" "${sig}"; then
        log "Stage 7: collect stats: done already (${stats_dir})"
    else
        log "Stage 7: collect stats: ${dumpdir}/raw/{${train_set},${valid_set}} with ${asr_config} -> ${stats_dir}"
        rm -rf "${stats_dir}"
        _logdir=${stats_dir}/logdir
        mkdir -p "${_logdir}"
        _nj=$(min "${nj}" "$(wc -l < "${dumpdir}/raw/${valid_set}/text")")
        [ "${_nj}" -lt 1 ] && _nj=1
        "${python}" -m espnet_msrs.bin.split_scp split --in "${dumpdir}/raw/${train_set}/text" \
            --out_pattern "${_logdir}/train.JOB.scp" --num "${_nj}" --keys_only true
        "${python}" -m espnet_msrs.bin.split_scp split --in "${dumpdir}/raw/${valid_set}/text" \
            --out_pattern "${_logdir}/valid.JOB.scp" --num "${_nj}" --keys_only true
        mapfile -t _topts < <(_train_data_opts train "${dumpdir}/raw/${train_set}")
        mapfile -t _vopts < <(_train_data_opts valid "${dumpdir}/raw/${valid_set}")
        mapfile -t _kopts < <(_token_opts)
        log "Collect-stats jobs: ${_nj} (logs: ${_logdir}/stats.*.log)"
        # shellcheck disable=SC2086
        _run_array "${_nj}" "${_logdir}/stats.JOB.log" ${cpu_cmd} "${python}" -m espnet_msrs.bin.avsr_train \
            --collect_stats true --use_preprocessor true --ngpu 0 --num_workers 0 \
            "${_kopts[@]}" --config "${asr_config}" "${_topts[@]}" "${_vopts[@]}" \
            --train_shape_file "${_logdir}/train.JOB.scp" --valid_shape_file "${_logdir}/valid.JOB.scp" \
            --output_dir "${_logdir}/stats.JOB"
        _inputs=()
        for _j in $(seq 1 "${_nj}"); do _inputs+=(--input_dir "${_logdir}/stats.${_j}"); done
        _run "${_logdir}/aggregate.log" "${python}" -m espnet2.bin.aggregate_stats_dirs \
            "${_inputs[@]}" --output_dir "${stats_dir}"
        _mark_done "${marker}" "${sig}" "${stats_dir}"/{train,valid}/speech_shape
    fi
fi

# Common training options (stages 8, 9): _common_train_opts [<train dir> <train shape file>].
_common_train_opts() {
    local train_dir=${1:-${dumpdir}/raw/${train_set}} train_shape=${2:-${stats_dir}/train/speech_shape}
    mapfile -t _topts < <(_train_data_opts train "${train_dir}")
    mapfile -t _vopts < <(_train_data_opts valid "${dumpdir}/raw/${valid_set}")
    mapfile -t _kopts < <(_token_opts)
    _common=(--use_preprocessor true "${_kopts[@]}" "${_topts[@]}" "${_vopts[@]}"
             --train_shape_file "${train_shape}"
             --valid_shape_file "${stats_dir}/valid/speech_shape"
             --resume "${resume}")
}

# Babble noise for training augmentation (audio and AV, MSRS/LR-SMS: SNRs
# of preprocessor_conf.noise_snrs): stage 6's noise (NOISEX_BABBLE or
# synthetic) given to the av preprocessor, unless the config names its own
# babble_path. _babble_opts <config> sets _babble (the options), _babble_sig
# (stage 6's marker when they are used) and _babble_note (for the log).
_babble_opts() {
    _babble=(); _babble_sig=(); _babble_note=""
    ${uses_audio} || return 0
    grep -qE '^preprocessor: *av *(#.*)?$' "$1" || return 0
    if grep -E '^ +babble_path:' "$1" | grep -qvE 'babble_path: *(null|~)? *(#.*)?$'; then
        _babble_note="training noise: the babble_path of $1"
    elif [ -f "${babble_train}" ]; then
        _babble=(--preprocessor_conf "babble_path=${babble_train}")
        _babble_sig=("$(_msig "${noise_dir}/.done")")
        _babble_note="training noise: ${babble_train} ($([ -n "${NOISEX_BABBLE}" ] && echo "NOISEX_BABBLE=${NOISEX_BABBLE}" || echo "synthetic babble"), stage 6)"
    else
        _babble_note="WARNING: no ${babble_train} (run stage 6): training without babble noise"
    fi
}

if [ "${stage}" -le 8 ] && [ "${stop_stage}" -ge 8 ]; then
    _timed 8
    if [ "${method}" != msrs ]; then
        log "Stage 8: MSRS mask search: skipped (method=${method})"
    else
        _check_config search_config "${search_config}"
        marker=${search_dir}/.done
        _search_fraction=()   # signatures of full-data searches stay as they were
        [ "${search_data_fraction}" != 1.0 ] && [ "${search_data_fraction}" != 1 ] \
            && _search_fraction=("fraction=${search_data_fraction}" "seed=${search_data_seed}")
        _babble_opts "${search_config}"
        sig=$(_sig "${asr_args}" "${search_args}" "$(_fsig "${search_config}")" "$(_msig "${stats_dir}/.done")" \
            "${_frontend_sig[@]}" ${_search_fraction[@]+"${_search_fraction[@]}"} ${_babble_sig[@]+"${_babble_sig[@]}"})
        if _is_done "${marker}" "${sig}"; then
            log "Stage 8: MSRS mask search: done already (${search_dir})"
        else
            _search_train=${dumpdir}/raw/${train_set}
            [ ${#_search_fraction[@]} -gt 0 ] && _search_train=${search_dir}/data/${train_set}
            log "Stage 8: MSRS mask search: ${_search_train} with ${search_config} -> ${search_dir}/{mask.pth,init.pth,sparsity_report.json}"
            _prepare_train_dir "${search_dir}" "${sig}"
            [ -z "${_babble_note}" ] || log "Stage 8: ${_babble_note}"
            if [ ${#_search_fraction[@]} -gt 0 ]; then
                log "Stage 8: searching on ${search_data_fraction} of ${dumpdir}/raw/${train_set} (seed ${search_data_seed}; stage 9 trains on all of it) -> ${_search_train}"
                _run "${search_dir}/log/subset.log" "${python}" -m espnet_msrs.bin.subset_data \
                    --in_dir "${dumpdir}/raw/${train_set}" --out_dir "${_search_train}" \
                    --fraction "${search_data_fraction}" --seed "${search_data_seed}" \
                    --shape_file "${stats_dir}/train/speech_shape" \
                    --out_shape_file "${_search_train}/speech_shape"
                _common_train_opts "${_search_train}" "${_search_train}/speech_shape"
            else
                _common_train_opts
            fi
            # shellcheck disable=SC2086
            _train "${search_dir}/train.log" "${search_dir}" "${_common[@]}" \
                --config "${search_config}" --msrs_conf mode=search "${_frontend_init[@]}" ${_babble[@]+"${_babble[@]}"} \
                --output_dir "${search_dir}" ${asr_args} ${search_args}
            for _f in mask.pth init.pth sparsity_report.json; do
                [ -f "${search_dir}/${_f}" ] || die "the mask search did not write ${search_dir}/${_f}; see ${search_dir}/train.log"
            done
            "${python}" - "${search_dir}/sparsity_report.json" <<'EOF' | while read -r line; do log "${line}"; done
import json, sys
r = json.load(open(sys.argv[1]))
s = r.get("search", {})
print(f"mask search: stop_reason={s.get('stop_reason')} epochs={len(s.get('epochs', []))} "
      f"sparsity_prunable={100 * r['prunable']['sparsity']:.1f}% "
      f"sparsity_all={100 * r['all_params']['sparsity']:.1f}% "
      f"history={[round(100 * h, 1) for h in s.get('sparsity_history', [])]}")
EOF
            _mark_done "${marker}" "${sig}" "${search_dir}"/{mask.pth,init.pth,sparsity_report.json}
        fi
    fi
fi

if [ "${stage}" -le 9 ] && [ "${stop_stage}" -ge 9 ]; then
    _timed 9
    _check_config asr_config "${asr_config}"
    _init=()
    _up=("${stats_dir}/.done")
    if [ "${method}" = msrs ]; then
        _up+=("${search_dir}/.done")
        [ -f "${search_dir}/mask.pth" ] || die "${search_dir}/mask.pth not found: run stage 8 first"
        case ${retrain_mode} in
            dense) _init=(--init_param "${search_dir}/init.pth") ;;
            sparse) _init=(--init_param "${search_dir}/init.pth"
                           --msrs_conf mode=sparse --msrs_conf "mask_file=${search_dir}/mask.pth") ;;
            grad_masked) _init=(--msrs_conf mode=grad_masked --msrs_conf "mask_file=${search_dir}/mask.pth") ;;
        esac
    fi
    _bsig=()
    case ${method} in
        set|rigl|gmp|chase)
            _init=(--msrs_conf "mode=${method}" --msrs_conf "sparsity=${sparsity}")
            _bsig=("sparsity=${sparsity}") ;;
    esac
    # MSRS dense/sparse retraining starts from init.pth (whose frontend the
    # search started from --init_frontend); every other run loads it here.
    if [ "${method}" != msrs ] || [ "${retrain_mode}" = grad_masked ]; then
        _init+=("${_frontend_init[@]}")
    fi
    marker=${train_dir}/.done
    _babble_opts "${asr_config}"
    sig=$(_sig "${method}" "${retrain_mode}" "${asr_args}" "$(_fsig "${asr_config}")" "$(_msig "${_up[@]}")" "${_frontend_sig[@]}" "${_bsig[@]}" ${_babble_sig[@]+"${_babble_sig[@]}"})
    if _is_done "${marker}" "${sig}"; then
        log "Stage 9: training: done already (${train_dir})"
    else
        _what="training"
        if [ "${method}" = msrs ]; then
            _what="MSRS ${retrain_mode} retraining from ${search_dir}"
            _is_done "${search_dir}/.done" "$(head -n 1 "${search_dir}/.done" 2>/dev/null)" \
                || die "the mask search in ${search_dir} is unfinished or its artifacts changed since it finished: run from stage 8"
        fi
        [ ${#_bsig[@]} -gt 0 ] && _what="${method} sparse training (sparsity ${sparsity})"
        log "Stage 9: ${_what}: ${dumpdir}/raw/${train_set} with ${asr_config} -> ${train_dir}"
        _prepare_train_dir "${train_dir}" "${sig}"
        [ -z "${_babble_note}" ] || log "Stage 9: ${_babble_note}"
        _common_train_opts
        # shellcheck disable=SC2086
        _train "${train_dir}/train.log" "${train_dir}" "${_common[@]}" --config "${asr_config}" \
            "${_init[@]}" ${_babble[@]+"${_babble[@]}"} --output_dir "${train_dir}" ${asr_args}
        if [ ${#_bsig[@]} -gt 0 ]; then
            [ -f "${train_dir}/sparsity_report.json" ] || die "${method} training did not write ${train_dir}/sparsity_report.json; see ${train_dir}/train.log"
            "${python}" - "${train_dir}/sparsity_report.json" <<'EOF' | while read -r line; do log "${line}"; done
import json, sys
r = json.load(open(sys.argv[1]))
print(f"sparse training: sparsity_prunable={100 * r['prunable']['sparsity']:.1f}% "
      f"sparsity_all={100 * r['all_params']['sparsity']:.1f}%")
EOF
        fi
        _mark_done "${marker}" "${sig}" "${train_dir}/config.yaml" \
            $(find "${train_dir}" -maxdepth 1 -type f -name '*epoch.pth' | sort)
    fi
fi

if [ "${stage}" -le 10 ] && [ "${stop_stage}" -ge 10 ]; then
    _timed 10
    marker=${train_dir}/.done.average
    # set | rigl | gmp | chase change their masks during training: an average
    # of epochs with different masks holds the union of their supports (a
    # denser model than --sparsity), and GMP's best epoch may predate its last
    # pruning; their model is the last epoch's, which holds the final masks,
    # unless --nbest_average asks for an average.
    _masks_change=false
    case ${method} in set|rigl|gmp|chase) _masks_change=true ;; esac
    _last_epoch=false; _last_sig=()   # (signatures of the other runs stay as they were)
    if ${_masks_change} && [ -z "${nbest_average}" ]; then _last_epoch=true; _last_sig=(last_epoch); fi
    sig=$(_sig "${nbest_average}" "${best_criterion}" "${inference_asr_model}" "$(_msig "${train_dir}/.done")" \
        ${_last_sig[@]+"${_last_sig[@]}"})
    if _is_done "${marker}" "${sig}"; then
        log "Stage 10: model averaging: done already (${train_dir}/${inference_asr_model})"
    else
        _opts=()
        if ${_last_epoch}; then
            log "Stage 10: the last epoch's model (method=${method} changes its masks during training; an average would hold the union of their supports, --nbest_average N averages anyway): ${train_dir}/<last>epoch.pth -> ${train_dir}/${inference_asr_model}"
            _opts=(--last_epoch true)
        else
            log "Stage 10: model averaging (${best_criterion}, nbest=${nbest_average:-keep_nbest_models}): ${train_dir}/*epoch.pth -> ${train_dir}/${inference_asr_model}"
            read -r -a _crit <<< "${best_criterion}"
            _opts=(--criterion "${_crit[@]}")
            [ -n "${nbest_average}" ] && _opts+=(--nbest "${nbest_average}")
        fi
        # the sparsity the model really has, against the final masks
        ${_masks_change} && _opts+=(--mask "${train_dir}/mask.pth")
        _run "${train_dir}/log/average.log" "${python}" -m espnet_msrs.bin.average_checkpoints \
            --exp_dir "${train_dir}" "${_opts[@]}" --out "${train_dir}/${inference_asr_model}"
        if ${_masks_change}; then
            { grep -E "masked weights of|denser than" "${train_dir}/log/average.log" || true; } \
                | sed -e 's/^.*\(masked weights of\)/\1/' -e 's/^.* WARNING: /WARNING: /' \
                | while read -r line; do log "Stage 10: ${line}"; done
        fi
        _mark_done "${marker}" "${sig}" "${train_dir}/${inference_asr_model}"
    fi
fi

if [ "${stage}" -le 11 ] && [ "${stop_stage}" -ge 11 ]; then
    _timed 11
    _model=${train_dir}/${inference_asr_model}
    [ -e "${_model}" ] || die "${_model} not found: run stages 9-10 first"
    _todo=()
    declare -A _dsig=()
    for _s in ${decode_sets}; do
        [ -f "${dumpdir}/raw/${_s}/text" ] || die "${dumpdir}/raw/${_s} not found: run stages 3-6 first"
        sig=$(_sig "${inference_args}" "$(_fsig "${inference_config}")" "$(_msig "${train_dir}/.done.average")" \
            "${_model} $(stat -L -c '%s %Y' "${_model}")" "$(_fsig "${train_dir}/config.yaml")" \
            "$(_msig "${dumpdir}/raw/${_s}/.done")")
        if _is_done "${decode_root}/${_s}/.done" "${sig}"; then
            log "Stage 11: decoding ${_s}: done already (${decode_root}/${_s}/text)"
        else
            _todo+=("${_s}")
            _dsig[${_s}]=${sig}
        fi
    done
    if [ "${#_todo[@]}" -gt 0 ]; then
        _nj=$(min "${inference_nj}" "$(wc -l < "${dumpdir}/raw/${_todo[0]}/text")")
        log "Stage 11: decoding (${inference_nj} jobs, ${modality}): ${_model} on ${_todo[*]} -> ${decode_root}/<set>/text"
        _logdir=${decode_root}/logdir
        mkdir -p "${_logdir}"
        _sets=()
        for _s in "${_todo[@]}"; do
            # outputs of another model or other options must not be reused
            rm -rf "${decode_root:?}/${_s}" "${_logdir:?}/${_s}"
            "${python}" -m espnet_msrs.bin.split_scp split --in "${dumpdir}/raw/${_s}/text" \
                --out_pattern "${_logdir}/${_s}/keys.JOB.scp" --num "${_nj}" --keys_only true
            mapfile -t _d < <(_infer_data_opts "${dumpdir}/raw/${_s}")
            _spec="${_s}"
            for ((_i = 1; _i < ${#_d[@]}; _i += 2)); do _spec+="|${_d[$_i]}"; done
            _sets+=(--set "${_spec}")
        done
        _ng=0
        ${gpu_inference} && _ng=1
        _cfg=()
        [ -n "${inference_config}" ] && _cfg=(--config "${inference_config}")
        # shellcheck disable=SC2086
        _run_array "${_nj}" "${_logdir}/decode.JOB.log" ${decode_cmd} "${python}" -m espnet_msrs.bin.decode_sets \
            "${_sets[@]}" --key_file_pattern "${_logdir}/{set}/keys.JOB.scp" \
            --output_pattern "${_logdir}/{set}/output.JOB" -- \
            --ngpu "${_ng}" --batch_size 1 "${_cfg[@]}" \
            --asr_train_config "${train_dir}/config.yaml" --asr_model_file "${_model}" \
            ${inference_args}
        # Utterances a job could not load or that have another audio rate
        # than the model are left out and listed with the reason in its
        # bad_utts.txt: merged into <set>/bad_utts.txt (RESULTS.md counts
        # them; scoring counts their words as deleted).
        for _s in "${_todo[@]}"; do
            mkdir -p "${decode_root}/${_s}"
            _parts=(); _left=()
            for _j in $(seq 1 "${_nj}"); do
                _parts+=("${_logdir}/${_s}/output.${_j}/1best_recog/text")
                _left+=($(_existing "${_logdir}/${_s}/output.${_j}/bad_utts.txt"))
            done
            "${python}" -m espnet_msrs.bin.split_scp merge --inputs "${_parts[@]}" \
                --out "${decode_root}/${_s}/text" --expect_keys "${dumpdir}/raw/${_s}/text" \
                --left_out ${_left[@]+"${_left[@]}"} --left_out_out "${decode_root}/${_s}/bad_utts.txt"
            _n=$(grep -c . "${decode_root}/${_s}/bad_utts.txt" || true)
            [ "${_n}" -gt 0 ] && log "Stage 11: ${_s}: ${_n} utterance(s) left out of decoding (unreadable or another audio rate), listed in ${decode_root}/${_s}/bad_utts.txt"
            _mark_done "${decode_root}/${_s}/.done" "${_dsig[${_s}]}" "${decode_root}/${_s}/text"
        done
        log "Decoded: ${decode_root}/{${_todo[*]// /,}}/text"
    fi
fi

if [ "${stage}" -le 12 ] && [ "${stop_stage}" -ge 12 ]; then
    _timed 12
    marker=${decode_root}/.done.score
    sig=$(_sig "${scorer}" "$(for _s in ${decode_sets}; do _msig "${decode_root}/${_s}/.done"; done)" \
        "$(_msig "${search_dir}/.done" "${train_dir}/.done.average")")
    if _is_done "${marker}" "${sig}"; then
        log "Stage 12: scoring: done already (${exp_tag}/RESULTS.md)"
    else
        log "Stage 12: scoring: ${decode_root}/<set>/text vs ${dumpdir}/raw/<set>/text -> ${decode_root}/<set>/score, ${exp_tag}/RESULTS.md, RESULTS.md"
        for _s in ${decode_sets}; do
            [ -f "${decode_root}/${_s}/text" ] || die "${decode_root}/${_s}/text not found: run stage 11 first"
            _run "${decode_root}/${_s}/score/score.log" "${python}" -m espnet_msrs.bin.score \
                --ref "${dumpdir}/raw/${_s}/text" --hyp "${decode_root}/${_s}/text" \
                --out_dir "${decode_root}/${_s}/score" --scorer "${scorer}"
        done
        # shellcheck disable=SC2086
        "${python}" -m espnet_msrs.bin.make_results --exp_root "${expdir}" \
            --tag_out "${exp_tag}/RESULTS.md" --tag "${tag}" --out RESULTS.md \
            --test_sets ${test_sets} --snrs ${snrs} --model_file "${inference_asr_model}"
        # The test data behind the numbers: dropped utterances and why (stages
        # 1, 3 and 11), the validation-set overlap, the noise (appended to the
        # experiment's RESULTS.md).
        _noise=()
        if ${uses_audio}; then
            _noise=(--noise "train=${babble_train}")
            for _t in "${_test_sets[@]}"; do
                if [ -f "${noise_dir}/babble_${_t}.wav" ] && [ -z "${NOISEX_BABBLE}" ]; then
                    _noise+=(--noise "${_t}=${noise_dir}/babble_${_t}.wav")
                else
                    _noise+=(--noise "${_t}=${babble_train}")
                fi
            done
        fi
        "${python}" -m espnet_msrs.bin.data_report --test_sets ${test_sets} --valid_set "${valid_set}" \
            --dump_root "${dumpdir}" --official_test_sizes "${official_test_sizes}" \
            --decode_dir "${decode_root}" ${_noise[@]+"${_noise[@]}"} --out "${decode_root}/data_report.md"
        { cat "${exp_tag}/RESULTS.md"; echo; cat "${decode_root}/data_report.md"; } > "${exp_tag}/RESULTS.md.tmp"
        mv "${exp_tag}/RESULTS.md.tmp" "${exp_tag}/RESULTS.md"
        _mark_done "${marker}" "${sig}" "${exp_tag}/RESULTS.md"
    fi
    "${python}" -m espnet_msrs.bin.make_results --print_table "${exp_tag}/RESULTS.md"
fi

if [ "${stage}" -le 13 ] && [ "${stop_stage}" -ge 13 ]; then
    _timed 13
    _model=${train_dir}/${inference_asr_model}
    _zip=${exp_tag}/packed/model.zip
    marker=${exp_tag}/packed/.done
    sig=$(_sig "$(_msig "${train_dir}/.done.average" "${decode_root}/.done.score")" "$(_fsig "${inference_config}")" \
        "${_model} $(stat -L -c '%s %Y' "${_model}" 2>/dev/null)")
    if _is_done "${marker}" "${sig}"; then
        log "Stage 13: packing: done already (${_zip})"
    else
        log "Stage 13: packing for the model zoo: ${train_dir}/{config.yaml,${inference_asr_model}} -> ${_zip}"
        mkdir -p "${exp_tag}/packed"
        _opts=()
        [ "${token_type}" = bpe ] && _opts+=(--option "${bpemodel}")
        [ -f "${exp_tag}/RESULTS.md" ] && _opts+=(--option "${exp_tag}/RESULTS.md")
        [ -f "${search_dir}/sparsity_report.json" ] && _opts+=(--option "${search_dir}/sparsity_report.json")
        rm -f "${_zip}"
        _run "${exp_tag}/packed/pack.log" "${python}" -m espnet2.bin.pack asr \
            --asr_train_config "${train_dir}/config.yaml" --asr_model_file "${_model}" \
            "${_opts[@]}" --outpath "${_zip}"
        _t=${_test_sets[0]}
        log "Stage 13: check: safe unpack of ${_zip} with espnet_model_zoo, decode one utterance of ${_t} with Speech2Text"
        _cfg=()
        [ -n "${inference_config}" ] && _cfg=(--inference_config "${inference_config}")
        _run "${exp_tag}/packed/check.log" "${python}" -m espnet_msrs.bin.check_packed_model \
            --zip "${_zip}" --data_dir "${dumpdir}/raw/${_t}" --modality "${modality}" \
            --reference_hyp "${decode_root}/${_t}/text" --out "${exp_tag}/packed/check.json" "${_cfg[@]}"
        _mark_done "${marker}" "${sig}" "${_zip}" "${exp_tag}/packed/check.json"
    fi
fi

if [ "${stop_stage}" -ge 12 ] && [ -f "${exp_tag}/RESULTS.md" ]; then
    log "Results: ${exp_tag}/RESULTS.md (all experiments: RESULTS.md)$([ -f "${exp_tag}/packed/model.zip" ] && echo "; packed model: ${exp_tag}/packed/model.zip")"
fi
_timed end
log "Wall time per stage:${_stage_times}"
log "Successfully finished. [elapsed=${SECONDS}s]"
