"""Diagnostics go to stderr through the ``reconcile`` logger only."""

from __future__ import annotations

import logging
import sys


def configure(verbose: int, log_format: str = "text") -> None:
    logger = logging.getLogger("reconcile")
    logger.handlers.clear()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("reconcile: %(levelname)s: %(message)s"))
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(
        logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    )
