"""espnet_msrs.utils.parallel.parallel_map: order, processes, progress, errors."""

import logging
import os

import pytest

from espnet_msrs.utils.parallel import parallel_map


def _square_and_pid(x):
    return x * x, os.getpid()


def _fail_on_three(x):
    if x == 3:
        raise ValueError("job 3 is bad")
    return x


@pytest.mark.parametrize("nj", [1, 2])
def test_results_in_input_order(nj):
    out = parallel_map(_square_and_pid, list(range(9)), nj=nj, chunksize=2)
    assert [v for v, _ in out] == [x * x for x in range(9)]
    pids = {p for _, p in out}
    assert (pids == {os.getpid()}) == (nj == 1)  # workers are other processes


def test_progress_lines_and_callback(caplog):
    seen = []
    with caplog.at_level(logging.INFO, logger="espnet_msrs.utils.parallel"):
        parallel_map(_square_and_pid, [1, 2, 3], nj=2, what="clips", log_every=0.0,
                     on_result=lambda job, res: seen.append((job, res[0])))
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("progress")]
    assert lines[-1].startswith("progress clips done=3/3 rate=") and "eta=0s" in lines[-1]
    assert sorted(seen) == [(1, 1), (2, 4), (3, 9)]


def test_a_failing_job_raises_and_bad_nj():
    with pytest.raises(ValueError, match="job 3 is bad"):
        parallel_map(_fail_on_three, [1, 2, 3], nj=2)
    with pytest.raises(ValueError, match="--nj=0 must be >= 1"):
        parallel_map(_square_and_pid, [1], nj=0)
