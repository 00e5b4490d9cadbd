#!/usr/bin/env bash
# LR-SMS Table III (AVSR): full rank, uniform alpha, MHSA only, FFN only, linear rank; cost ratios; rank energy by depth.
# Idempotent and resumable; options go to local/study.py (--jobs, --ngpu, --seeds, ...).
exec "$(dirname "$0")/run_table.sh" lrsms_avsr "$@"
