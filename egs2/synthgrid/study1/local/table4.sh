#!/usr/bin/env bash
# MSRS Table 4 + Fig. 3: SET, RigL, GMP, CHASE and MSRS at ~40 % sparsity from random init and from a pretrained frontend, dense with MSRS masks.
# Idempotent and resumable; options go to local/study.py (--jobs, --ngpu, --seeds, ...).
exec "$(dirname "$0")/run_table.sh" table4 "$@"
