"""The per-interval series read back from an ESPnet train.log."""

from espnet_msrs.utils.train_log import interval_series

LOG = """\
2026-12-02 10:00:00 (trainer:1) INFO: 1epoch:train:1-2batch: iter_time=1.0, loss=9.0, grad_norm_enc0_ffn=0.5
2026-12-02 10:00:01 (trainer:1) INFO: 1epoch:train:3-4batch: loss=8.0grad_norm_enc0_ffn=0.25
2026-12-02 10:00:02 (trainer:1) INFO: 1epoch results: [train] loss=8.5
2026-12-02 10:00:03 (trainer:1) INFO: 2epoch:train:1-2batch: loss=7.0, grad_norm_enc0_ffn=nan
2026-12-02 10:00:04 (trainer:1) INFO: 2epoch:train:1-2batch: loss=6.5, grad_norm_enc0_ffn=1e-3
2026-12-02 10:00:05 (trainer:1) INFO: 2epoch:train:3-3batch: loss=6.0
"""


def test_steps_continue_across_epochs_and_a_repeated_interval_keeps_its_last_value(tmp_path):
    log = tmp_path / "train.log"
    log.write_text(LOG)
    # epoch 1 ends at batch 4, so epoch 2's batch 2 is global step 6; the
    # resumed interval 2:1-2 keeps 1e-3; a line without the key is skipped;
    # a field glued to the previous one ("8.0grad_norm...") is still read.
    assert interval_series(log, "grad_norm_enc0_ffn") == [(1, 2, 0.5), (1, 4, 0.25), (2, 6, 1e-3)]
    assert interval_series(log, "loss") == [(1, 2, 9.0), (1, 4, 8.0), (2, 6, 6.5), (2, 7, 6.0)]
    assert interval_series(log, "absent") == []
