"""Command-line entry points, one Hydra app per module.

A user-facing error ends a command with its one-paragraph message and exit code 1, no traceback;
``PCBSEG_DEBUG=1`` re-raises it so developers get the full traceback.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import NoReturn


def debugging() -> bool:
    return os.environ.get("PCBSEG_DEBUG", "") not in ("", "0")


def exit_with(log: logging.Logger, error: BaseException) -> NoReturn:
    """Log ``error`` as the user's message and exit 1 (or re-raise it under ``PCBSEG_DEBUG=1``)."""
    if debugging():
        raise error
    log.error("%s", error)
    sys.exit(1)
