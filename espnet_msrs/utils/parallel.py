"""One parallel map with progress for the data-preparation tools.

:func:`parallel_map` runs ``fn`` over a list of jobs in worker processes (or
inline with one job) and logs ``progress <what> done=…/… rate=…/s eta=…s``
at most every ``log_every`` seconds and at the end, so every long recipe step
shows its rate and ETA in its log the same way. Results come back in the
order of the jobs.

Standard library only (it also runs in the landmark detector's separate
environment, which has neither torch nor espnet2).
"""

import logging
import multiprocessing
import time
from typing import Callable, List, Optional, Sequence, TypeVar

logger = logging.getLogger(__name__)

J = TypeVar("J")
R = TypeVar("R")


def _indexed(args):
    fn, index, job = args
    return index, fn(job)


def parallel_map(
    fn: Callable[[J], R],
    jobs: Sequence[J],
    nj: int = 1,
    what: str = "jobs",
    log_every: float = 10.0,
    start_method: Optional[str] = None,
    chunksize: int = 1,
    on_result: Optional[Callable[[J, R], None]] = None,
) -> List[R]:
    """``[fn(job) for job in jobs]`` over ``nj`` processes, in input order.

    Args:
        fn: A picklable function of one job (module level).
        jobs: The jobs.
        nj: Worker processes (1: run inline).
        what: Name of the jobs in the progress lines ("clips", "utterances").
        log_every: Seconds between progress lines.
        start_method: ``fork`` (default where available) or ``spawn`` (for
            workers that must not inherit threads, e.g. MediaPipe graphs).
        chunksize: Jobs handed to a worker at once.
        on_result: Called in the parent as ``on_result(job, result)`` as each
            result arrives (completion order), e.g. to log a failure at once.

    Returns:
        The results, in the order of ``jobs``.

    Raises:
        ValueError: ``nj`` < 1.
    """
    if nj < 1:
        raise ValueError(f"--nj={nj} must be >= 1")
    total = len(jobs)
    results: List[Optional[R]] = [None] * total
    start = last = time.monotonic()
    pool = None
    if nj == 1 or total <= 1:
        iterator = ((i, fn(job)) for i, job in enumerate(jobs))
    else:
        if start_method is None:
            methods = multiprocessing.get_all_start_methods()
            start_method = "fork" if "fork" in methods else "spawn"
        pool = multiprocessing.get_context(start_method).Pool(min(nj, total))
        tasks = [(fn, i, job) for i, job in enumerate(jobs)]
        iterator = pool.imap_unordered(_indexed, tasks, chunksize=chunksize)
    try:
        for done, (index, result) in enumerate(iterator, 1):
            results[index] = result
            if on_result is not None:
                on_result(jobs[index], result)
            now = time.monotonic()
            if now - last >= log_every or done == total:
                rate = done / max(now - start, 1e-9)
                logger.info(
                    "progress %s done=%d/%d rate=%.2f/s eta=%.0fs",
                    what,
                    done,
                    total,
                    rate,
                    (total - done) / rate,
                )
                last = now
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    return results
