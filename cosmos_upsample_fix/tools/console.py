"""What the command line does around each command: its log lines, held warnings, and failures.

A failure the user can fix is one line (``cosmos-upsample-fix: error: ...``, status 2),
including an optional module that is not installed (the line names the package extra that
brings it); a bug of ours is one "internal error" line (status 1).
"""
from __future__ import annotations

import importlib
import logging
import os
import sys

from cosmos_upsample_fix.core import env
from cosmos_upsample_fix.errors import UpsampleFixError

PROG = "cosmos-upsample-fix"

OPTIONAL = {"cv2": ("OpenCV", "demo")}
"""Optional modules: what they are and the package extra that installs them."""


def missing(module: str, purpose: str) -> UpsampleFixError:
    """The one-line error for an optional module that is not installed: the extra that brings it."""
    what, extra = OPTIONAL[module]
    return UpsampleFixError(
        f"{purpose} needs {what}, which is not installed here; install the package's {extra} extra: "
        f"pip install '{PROG}[{extra}]'"
    )


def require(module: str, purpose: str) -> None:
    """UpsampleFixError naming the extra to install when the optional ``module`` cannot be imported."""
    try:
        importlib.import_module(module)
    except ImportError:
        raise missing(module, purpose) from None


def optional_missing(exc: ImportError) -> UpsampleFixError | None:
    """The user's error for an optional module missing deep inside a library (e.g. mistral_common's
    "`opencv` is not installed"), or None for an ImportError that is a bug of ours."""
    text = str(exc).lower()
    for module in OPTIONAL:
        if exc.name == module or module in text or OPTIONAL[module][0].lower() in text:
            return missing(module, "this command")
    return None


class LogLine(logging.Formatter):
    """``cosmos-upsample-fix: warning: MESSAGE``: one prefix, where the library's own lines carry
    one for Cosmos's log already; the level in lower case, as in ``error:``."""

    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        own = f"{PROG}: "
        return f"{own}{record.levelname.lower()}: {message.removeprefix(own)}"


class HeldWarnings(logging.Handler):
    """Keeps the package's warnings while a command runs (see :func:`main`)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def quiet_stdout() -> None:
    """After the reader closed the pipe: send what is left to /dev/null, so exiting prints nothing."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # not a real file (e.g. captured by a caller)
        pass


def internal_error(exc: Exception) -> int:
    """A bug of ours: one line, status 1 (the traceback with COSMOS_UPSAMPLE_FIX_DEBUG=1)."""
    if env.DEBUG.get():
        raise exc
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    print(f"{PROG}: internal error: {text} (set {env.DEBUG.name}=1 for the traceback)", file=sys.stderr)
    return 1
