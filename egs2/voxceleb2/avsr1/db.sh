#!/usr/bin/env bash
# Paths of the corpora on disk (read by local/data.sh). A value already in the
# environment wins, so `VOXCELEB2=/data/vox2 ./run.sh` works without editing.

# VoxCeleb2 (https://www.robots.ox.ac.uk/~vgg/data/voxceleb/vox2.html): the
# folder that holds dev/mp4/<id>/<video>/<n>.mp4 (and optionally dev/aac/).
VOXCELEB2=${VOXCELEB2:-}

# English selection: a list of <id>/<video>/<n> clips (or <id> speakers), e.g.
# AV-HuBERT's vox-en.id. Empty: every clip (VoxCeleb2 is multilingual).
VOXCELEB2_EN_IDS=${VOXCELEB2_EN_IDS:-}

# Transcripts: CSV(s) with rows dataset,rel_path,length,text (space-separated
# list of files). Empty: give `--local_data_opts "--asr_model <zip or zoo name>"`
# to label the clips automatically (written to data/local/vox2/auto_labels.csv).
VOXCELEB2_LABELS=${VOXCELEB2_LABELS:-}

# Optional: landmark tree mirroring dev/mp4 (<dir>/<id>/<video>/<n>.pkl).
VOXCELEB2_LANDMARKS=${VOXCELEB2_LANDMARKS:-}

# Optional: the NOISEX-92 babble recording (babble.wav; any format and rate,
# resampled to 16 kHz) for stage 6: training augmentation and the noisy test
# sets. Empty: synthetic babble summed from the corpus' own utterances.
NOISEX_BABBLE=${NOISEX_BABBLE:-}
