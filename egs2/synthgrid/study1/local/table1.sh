#!/usr/bin/env bash
# MSRS Table 1 + Fig. 1: dense, LayerScale, MSRS -> dense/sparse, MSRS + LayerScale and dense with MSRS masks, VSR from random init at each depth of the sweep.
# Idempotent and resumable; options go to local/study.py (--jobs, --ngpu, --seeds, ...).
exec "$(dirname "$0")/run_table.sh" table1 "$@"
