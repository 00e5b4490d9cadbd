"""What the data-preparation command-line tools share.

Every tool in ``espnet_msrs/bin`` that a recipe stage runs is built the same
way: :func:`tool_parser` (described by its module docstring, defaults shown),
:func:`add_job_arguments` for the options of a parallel job (``--nj``,
``--log_level`` and, for tools that may drop utterances, ``--failed_list``
and ``--allow_failures``), :func:`parse_tool_args` (parses, checks ``--nj``,
sets up logging) and :func:`failure_status` (the exit status of a run with
failures). Standard library only unless ``failures`` options are added
(ESPnet's ``str2bool``), so the landmark detector's separate environment can
use it too.
"""

import argparse
import logging
from pathlib import Path
from typing import Optional, Sequence, Union

from espnet_msrs.utils.runtime import setup_logging

logger = logging.getLogger(__name__)
LOG_LEVELS = ("ERROR", "WARNING", "INFO", "DEBUG")


def tool_parser(doc: Optional[str]) -> argparse.ArgumentParser:
    """A parser whose description is the first line of ``doc`` (a module
    docstring or a one-line description) and whose help shows every default."""
    first = (doc or "").strip().splitlines()[0] if (doc or "").strip() else None
    return argparse.ArgumentParser(
        description=first, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )


def add_log_level_argument(parser: argparse.ArgumentParser, default: str = "INFO") -> None:
    """``--log_level`` (one of :data:`LOG_LEVELS`), read by :func:`parse_tool_args`."""
    parser.add_argument("--log_level", default=default, choices=LOG_LEVELS,
                        help="Logging level")


def add_job_arguments(
    parser: argparse.ArgumentParser, failures: bool = False, nj: int = 1
) -> None:
    """``--nj`` (default ``nj``) and ``--log_level``; with ``failures`` also
    ``--failed_list`` (where failed utterances are listed with the reason)
    and ``--allow_failures`` (exit 0 anyway)."""
    parser.add_argument("--nj", type=int, default=nj, help="Parallel processes")
    add_log_level_argument(parser)
    if failures:
        from espnet2.utils.types import str2bool

        parser.add_argument("--failed_list", default=None,
                            help="Failures with reasons (default: <out_dir>/failed.txt)")
        parser.add_argument("--allow_failures", type=str2bool, default=False,
                            help="Exit 0 even if some utterances failed")


def parse_tool_args(
    parser: argparse.ArgumentParser, cmd: Optional[Sequence[str]] = None
) -> argparse.Namespace:
    """Parse ``cmd``, check ``--nj`` and set up logging (``--log_level`` or INFO).

    Raises:
        ValueError: ``--nj`` < 1.
    """
    args = parser.parse_args(cmd)
    setup_logging(getattr(args, "log_level", "INFO"))
    if getattr(args, "nj", 1) < 1:
        raise ValueError(f"--nj={args.nj} must be >= 1")
    return args


def failure_status(
    failed: int, allow_failures: bool, failed_list: Union[str, Path]
) -> int:
    """0, or 1 with an error naming the list when utterances failed and
    failures are not allowed."""
    if failed and not allow_failures:
        logger.error("%d utterance(s) failed (see %s); pass --allow_failures true to "
                     "continue", failed, failed_list)
        return 1
    return 0
