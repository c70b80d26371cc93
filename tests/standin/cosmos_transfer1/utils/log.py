"""Stand-in for ``cosmos_transfer1.utils.log`` (upstream wraps loguru).

Module-level ``trace/debug/info/success/warning/error/critical/exception(message, rank0_only=True)``
and a ``logger`` object with the same methods. Every message is appended to ``records`` as
``(level, message)`` so tests can look for a line, and INFO and above are printed to stdout
as ``[cosmos-standin] LEVEL | message`` (upstream logs to stdout too).
"""

from __future__ import annotations

import os
import sys

records: list[tuple[str, str]] = []

_LEVELS = {"TRACE": 5, "DEBUG": 10, "INFO": 20, "SUCCESS": 25, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}


def _threshold() -> int:
    return _LEVELS.get(os.environ.get("LOGURU_LEVEL", "INFO").upper(), 20)


def _rank() -> int:
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def _emit(level: str, message: object, rank0_only: bool = True) -> None:
    if rank0_only and _rank() != 0:
        return
    text = str(message)
    records.append((level, text))
    if _LEVELS[level] >= _threshold():
        print(f"[cosmos-standin] {level} | {text}", file=sys.stdout, flush=True)


def trace(message: str, rank0_only: bool = True) -> None:
    _emit("TRACE", message, rank0_only)


def debug(message: str, rank0_only: bool = True) -> None:
    _emit("DEBUG", message, rank0_only)


def info(message: str, rank0_only: bool = True) -> None:
    _emit("INFO", message, rank0_only)


def success(message: str, rank0_only: bool = True) -> None:
    _emit("SUCCESS", message, rank0_only)


def warning(message: str, rank0_only: bool = True) -> None:
    _emit("WARNING", message, rank0_only)


def error(message: str, rank0_only: bool = True) -> None:
    _emit("ERROR", message, rank0_only)


def critical(message: str, rank0_only: bool = True) -> None:
    _emit("CRITICAL", message, rank0_only)


def exception(message: str, rank0_only: bool = True) -> None:
    _emit("ERROR", message, rank0_only)


class _Logger:
    """loguru-like object: ``logger.info("...")`` etc. (never rank-filtered, like loguru itself)."""

    def trace(self, message, *args, **kwargs):
        _emit("TRACE", str(message).format(*args, **kwargs) if args or kwargs else message, False)

    def debug(self, message, *args, **kwargs):
        _emit("DEBUG", str(message).format(*args, **kwargs) if args or kwargs else message, False)

    def info(self, message, *args, **kwargs):
        _emit("INFO", str(message).format(*args, **kwargs) if args or kwargs else message, False)

    def success(self, message, *args, **kwargs):
        _emit("SUCCESS", str(message).format(*args, **kwargs) if args or kwargs else message, False)

    def warning(self, message, *args, **kwargs):
        _emit("WARNING", str(message).format(*args, **kwargs) if args or kwargs else message, False)

    def error(self, message, *args, **kwargs):
        _emit("ERROR", str(message).format(*args, **kwargs) if args or kwargs else message, False)

    def critical(self, message, *args, **kwargs):
        _emit("CRITICAL", str(message).format(*args, **kwargs) if args or kwargs else message, False)

    def exception(self, message, *args, **kwargs):
        _emit("ERROR", str(message).format(*args, **kwargs) if args or kwargs else message, False)

    def log(self, level, message, *args, **kwargs):
        level = str(level).upper()
        _emit(
            level if level in _LEVELS else "INFO",
            str(message).format(*args, **kwargs) if args or kwargs else message,
            False,
        )


logger = _Logger()


def messages(level: str | None = None) -> list[str]:
    """Recorded messages, optionally of one level (stand-in helper for tests)."""
    return [m for lvl, m in records if level is None or lvl == level.upper()]
