"""The plugin's log lines where a Cosmos user looks: Cosmos's loguru log, else standard logging.

Cosmos-Transfer1 logs through loguru (``cosmos_transfer1.utils.log``), which standard
``logging`` records never reach. The bridge handler forwards the package's records there
(or to loguru's default logger). When neither Cosmos's log, loguru, nor any ``logging``
handler is set up, warnings still go to stderr (as Python's own last-resort handler would
print them), so a refusal or a skipped prompt is never silent.
"""
from __future__ import annotations

import logging
import sys
import threading

COSMOS_LOG_MODULE = "cosmos_transfer1.utils.log"
PACKAGE_LOGGER = "cosmos_upsample_fix"


def _other_handlers(logger: logging.Logger) -> bool:
    """True when a handler other than the bridge would see ``logger``'s records."""
    current: logging.Logger | None = logger
    while current is not None:
        if any(not isinstance(h, CosmosLogHandler) for h in current.handlers):
            return True
        if not current.propagate:
            return False
        current = current.parent
    return False


class CosmosLogHandler(logging.Handler):
    """Forwards this package's records to Cosmos's loguru logger (or loguru's default one)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            cosmos_log = sys.modules.get(COSMOS_LOG_MODULE)
            name = record.levelname.lower()
            if cosmos_log is not None and callable(getattr(cosmos_log, name, None)):
                getattr(cosmos_log, name)(message)
                return
            loguru = sys.modules.get("loguru")
            if loguru is not None:
                loguru.logger.log(record.levelname, message)
                return
            last = logging.lastResort
            quiet = not _other_handlers(logging.getLogger(record.name))
            if last is not None and record.levelno >= last.level and quiet:
                last.handle(record)
        except Exception:  # logging must never break the job
            self.handleError(record)


_lock = threading.Lock()


def bridge_logging() -> None:
    """Attach the bridge to the package's logger once per process (INFO unless set otherwise)."""
    package_logger = logging.getLogger(PACKAGE_LOGGER)
    with _lock:
        if any(isinstance(h, CosmosLogHandler) for h in package_logger.handlers):
            return
        package_logger.addHandler(CosmosLogHandler())
        if package_logger.level == logging.NOTSET:
            package_logger.setLevel(logging.INFO)
