#!/usr/bin/env bash
# One table of the study: run its cells (idempotent, resumable), write
# results/<table>.{json,md} and figures/, and rebuild STUDY.md.
#   local/run_table.sh <table> [options of local/study.py]
# e.g. local/run_table.sh table1 --jobs 2 ; local/run_table.sh lrsms_asr --ngpu 1
# A cell that fails is reported as such (its log: exp/<tag>/study_run.log);
# the exit status is then 1, after the report.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 <table> [options of local/study.py]" >&2; exit 2; }
table=$1; shift
cd "$(dirname "$0")/.."
. ./path.sh
rc=0
python3 local/study.py run "${table}" "$@" || rc=$?
python3 local/study.py report "${table}" "$@"
python3 local/study.py assemble "$@"
exit "${rc}"
