"""Logging set-up and switchable progress bars shared by the CLI and the rule scripts."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(log_file: str | None = None, level: int = logging.INFO, echo_warnings: bool = False) -> None:
    """Send cmbflow's log records, Python warnings and an uncaught error's traceback to
    ``log_file`` (a rule's ``log:``; the traceback still reaches stderr too), or all to stderr.
    ``echo_warnings``: warnings and errors reach stderr as well (the Snakemake console), for
    rules whose warnings a user must see without opening the log (input checks)."""
    handler: logging.Handler = logging.FileHandler(log_file) if log_file else logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    if log_file and echo_warnings:
        console = logging.StreamHandler(sys.stderr)
        console.setLevel(logging.WARNING)
        console.setFormatter(logging.Formatter(LOG_FORMAT))
        root.addHandler(console)
    root.setLevel(level)
    logging.captureWarnings(True)
    if log_file:
        sys.excepthook = _log_then_print


def _log_then_print(kind, error, traceback) -> None:
    """An uncaught error: its traceback into the rule's log, then to stderr as Python would."""
    if not issubclass(kind, KeyboardInterrupt):
        logging.getLogger("cmbflow").critical("uncaught %s", kind.__name__, exc_info=(kind, error, traceback))
    sys.__excepthook__(kind, error, traceback)


def progress(items: Iterable[T], enabled: bool, desc: str, total: int | None = None) -> Iterable[T]:
    """Wrap ``items`` in a tqdm bar when ``enabled`` (config ``progress_bars`` / CLI ``--progress``)."""
    return tqdm(items, desc=desc, total=total, disable=not enabled, file=sys.stderr, leave=False)
