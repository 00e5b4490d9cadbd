#!/usr/bin/env bash
# LR-SMS Tables I-II + Figs. 3-4 (ASR): full rank, uniform alpha, MHSA only, FFN only, linear rank, SVD vs Kaiming; cost ratios; rank energy by depth.
# Idempotent and resumable; options go to local/study.py (--jobs, --ngpu, --seeds, ...).
exec "$(dirname "$0")/run_table.sh" lrsms_asr "$@"
