"""A training subprocess's log shows ESPnet's progress (issue: fresh machine).

Run as the recipe runs it (``python -m espnet_msrs.bin.avsr_train``, output
to ``train.log``), a mask search must log ESPnet's per-epoch result lines
with every loss term, the mask penalty, the sparsity and the gradient norm of
the first encoder FFN, the ETA, and — after a ``--resume true`` — the
"resumed" line; and no ``[nltk_data]`` download errors. Before the fix a
record logged while espnet2 was imported made ESPnet's
``logging.basicConfig(level=INFO)`` a no-op and the log held ~13 lines.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tasks.test_msrs_procedure import _cmd, corpus  # noqa: F401  (fixture)

REPO = Path(__file__).resolve().parents[2]


def _run_training(corpus, out: Path, *extra) -> str:
    log = out / "train.log"
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "espnet_msrs.bin.avsr_train",
           *_cmd(corpus, out, list(extra))]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    with open(log, "a") as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env,
                              cwd=str(REPO), timeout=600)
    text = log.read_text()
    assert proc.returncode == 0, text[-3000:]
    return text


def test_search_log_has_epoch_results_eta_terms_and_resume(corpus):
    out = corpus["root"] / "search"
    search = ["--msrs_conf", "mode=search", "--msrs_conf", "mask_penalty=1.0e-5",
              "--msrs_conf", "min_search_epochs=8"]
    first = _run_training(corpus, out, *search, "--max_epoch", "2")
    # ESPnet's epoch result lines, one per epoch, with every term
    results = re.findall(r"(\d+)epoch results: \[train\] (.*)", first)
    assert [int(e) for e, _ in results] == [1, 2], first[-2000:]
    for _, line in results:
        for key in ("loss_att=", "loss_ctc=", "mask_penalty=", "sparsity=",
                    "grad_norm_enc0_ffn=", "phi_mean=", "[valid]"):
            assert key in line, (key, line)
    assert "Estimated time to finish" in first
    assert re.search(r"msrs mask search: epoch=2 sparsity=\d", first)
    assert "[nltk_data]" not in first
    # a resumed run says so, then goes on with epoch 3
    second = _run_training(corpus, out, *search, "--max_epoch", "3",
                           "--resume", "true")
    tail = second[len(first):]
    assert re.search(r"resumed from|was resumed", tail), tail[-2000:]
    assert re.findall(r"(\d+)epoch results", tail) == ["3"]
