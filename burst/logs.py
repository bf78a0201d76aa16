"""Logging helpers shared by the command-line verbs."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def quiet_logs() -> Iterator[None]:
    """Only errors from burst's loggers while a simulation runs (its summary tells what matters);
    the level is put back afterwards, so a caller's own logging is left as it was."""
    logger = logging.getLogger("burst")
    before = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(before)
