#!/usr/bin/env bash
# MSRS Fig. 2: the lambda sweep (mask-search sparsity per epoch, WER after sparse retraining).
# Idempotent and resumable; options go to local/study.py (--jobs, --ngpu, --seeds, ...).
exec "$(dirname "$0")/run_table.sh" fig2 "$@"
