"""Data preparation shared by the recipes (stages 1-6); no espnet2 model code.

* :mod:`~espnet_msrs.data_prep.corpus` — corpus paths of ``db.sh`` and problem reports;
* :mod:`~espnet_msrs.data_prep.text` — the one transcript normaliser, token-id labels;
* :mod:`~espnet_msrs.data_prep.audio` — decoding, resampling, writing audio (stages 1, 2);
* :mod:`~espnet_msrs.data_prep.video` — colour video segments, landmark files, mouth ROIs (stages 1, 2);
* :mod:`~espnet_msrs.data_prep.face_landmarks` — offline landmark detection (MediaPipe);
* :mod:`~espnet_msrs.data_prep.output_sources` — which source each per-file output was made from;
* :mod:`~espnet_msrs.data_prep.validate` — format and validate a data directory (stage 3);
* :mod:`~espnet_msrs.data_prep.noise` — NOISEX or synthetic babble, noisy test sets (stage 6);
* :mod:`~espnet_msrs.data_prep.data_report` — what happened to each test set, for RESULTS.md.

Kaldi-style data directories themselves: :mod:`espnet_msrs.utils.data_dir`.
Command-line entry points: ``python -m espnet_msrs.bin.<tool>``.
"""
