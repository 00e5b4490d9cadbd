#!/usr/bin/env bash
# The whole study (README.md): every table in turn, then STUDY.md.
# Options go to local/study.py for every table (e.g. --jobs 2, --ngpu 1).
# On the 2-core CPU machine run it niced:   nice -n 15 ./run_study.sh
set -euo pipefail
cd "$(dirname "$0")"
SECONDS=0
rc=0
for table in table1 fig2 table4 lrsms_asr lrsms_avsr; do
    echo "$(date '+%F %T') study: ${table}"
    local/run_table.sh "${table}" "$@" || rc=1
    echo "$(date '+%F %T') study: ${table} finished (elapsed ${SECONDS} s)"
done
echo "$(date '+%F %T') study: done in ${SECONDS} s; see STUDY.md"
exit "${rc}"
