"""Process set-up shared by every espnet_msrs entry point: logging and offline use.

* :func:`setup_logging` is the one logging set-up of our command-line tools.
* :func:`drop_implicit_log_handlers` undoes what a module-level
  ``logger.warning(...)`` during an import does: with no root handler, such
  a call runs ``logging.basicConfig()`` with its defaults (WARNING level),
  after which every later ``basicConfig`` — ours, and ESPnet's
  ``basicConfig(level=INFO)`` in ``AbsTask.main_worker`` — is a silent no-op
  and ``train.log`` loses its INFO lines (epoch results, ETA, resumes).
  espnet2's own import logs "Failed to import Flash Attention" that way.
* :func:`disable_nltk_downloads`: importing ``espnet2.tasks.asr`` reaches
  ``g2p_en``, which calls ``nltk.download()`` for two corpora it does not
  find — a network attempt that prints eight ``[nltk_data] Error`` lines
  into every log. We never use g2p_en; in our processes ``nltk.download``
  becomes a function that only logs at DEBUG and returns False (what nltk
  returns when a download fails), without touching ESPnet's files.

Library modules never configure logging or emit records at import time;
they log through ``logging.getLogger(__name__)``.
"""

import logging
from typing import Union

#: The log line format of ESPnet's tools (without the host prefix).
LOG_FORMAT = "%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s"

logger = logging.getLogger(__name__)


def _is_implicit_handler(handler: logging.Handler) -> bool:
    """A root handler made by ``logging.basicConfig()`` with its defaults."""
    return (
        type(handler) is logging.StreamHandler
        and handler.formatter is not None
        and handler.formatter._fmt == logging.BASIC_FORMAT
    )


def drop_implicit_log_handlers() -> int:
    """Remove default-format root handlers that an import-time log call made.

    Handlers configured on purpose (another format, a file, pytest's capture)
    are kept. Returns the number removed.
    """
    root = logging.getLogger()
    dropped = [h for h in root.handlers if _is_implicit_handler(h)]
    for handler in dropped:
        root.removeHandler(handler)
    return len(dropped)


def setup_logging(level: Union[str, int] = "INFO", fmt: str = LOG_FORMAT) -> None:
    """Configure the root logger of a command-line tool (effective even when
    an import already logged)."""
    drop_implicit_log_handlers()
    logging.basicConfig(level=level, format=fmt)


def _skip_download(info_or_id=None, *args, **kwargs) -> bool:
    logger.debug("nltk.download(%r) skipped: espnet_msrs runs offline", info_or_id)
    return False


def disable_nltk_downloads() -> None:
    """Make ``nltk.download`` a no-op in this process (idempotent; no-op
    without nltk). Call before importing ``espnet2.tasks.asr``."""
    try:
        import nltk
    except ImportError:
        return
    nltk.download = _skip_download
