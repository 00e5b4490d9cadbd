#!/usr/bin/env bash
# Stage 1 of the synthetic GRID-like recipe: generate the corpus (espeak-ng
# speech + rendered faces with landmarks, deterministic from --seed) into
# ${SYNTHGRID} (db.sh), then write Kaldi-style data dirs
# data/{train,valid,test}/{wav.scp,video.scp,landmark.scp,text,utt2spk,spk2utt}.
# Split (--split utterance, GRID's usual "overlapped speakers" protocol):
# every speaker is in every set; per speaker --num_test utterances go to test
# and --num_valid to valid. --split speaker holds out whole speakers instead.
# Re-running is cheap: complete utterances are not generated again and the
# data files are rewritten only when they change.
set -euo pipefail
log() {
    local fname=${BASH_SOURCE[1]##*/}
    echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*"
}

num_speakers=4       # Speakers (voices and faces).
utts_per_speaker=50  # Utterances per speaker (distinct sentences).
seed=0               # Corpus seed.
nj=2                 # Generation processes.
split=utterance      # utterance | speaker.
num_valid=4          # Valid utterances per speaker (--split utterance).
num_test=6           # Test utterances per speaker (--split utterance).
num_valid_speakers=1 # Valid speakers (--split speaker).
num_test_speakers=1  # Test speakers (--split speaker).
help_message="Usage: $0 [--num_speakers N] [--utts_per_speaker M] [--seed S] [--nj J]
    [--split utterance|speaker] [--num_valid V] [--num_test T]
    [--num_valid_speakers V] [--num_test_speakers T]
  (from the recipe directory; ./run.sh passes --local_data_opts)"
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../../../../local/data_options.sh"
[ -n "${SYNTHGRID}" ] || { echo "$0: set SYNTHGRID in db.sh (where to write the corpus)" >&2; exit 1; }

log "Generating the synthetic GRID corpus: speakers=${num_speakers} utts_per_speaker=${utts_per_speaker} seed=${seed} -> ${SYNTHGRID}"
"${python}" -m espnet_msrs.bin.make_synthgrid --out "${SYNTHGRID}" \
    --num_speakers "${num_speakers}" --utts_per_speaker "${utts_per_speaker}" \
    --seed "${seed}" --nj "${nj}"

log "Data dirs (split=${split}): ${SYNTHGRID}/manifest.tsv -> data/{train,valid,test}"
"${python}" local/data_prep.py --corpus "${SYNTHGRID}" --data_dir data --split "${split}" \
    --num_valid "${num_valid}" --num_test "${num_test}" \
    --num_valid_speakers "${num_valid_speakers}" --num_test_speakers "${num_test_speakers}" \
    --seed "${seed}"
log "Successfully finished data preparation"
