"""Logging to stdout in the product's format, with every known secret masked before it is written."""
from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s [%(levelname)s] [%(name)s] %(message)s"
# Libraries that log request headers or connection URLs at DEBUG: keep them quiet whatever the level.
_NOISY = ("ccxt", "urllib3", "requests")
# pika logs every failed connection attempt as a dozen ERROR lines; common.broker says it in one.
_SILENT = ("pika",)


class SecretMask(logging.Filter):
    """Replaces registered secret values in the final message (args included) with '***'."""

    def __init__(self):
        super().__init__()
        self.secrets: set[str] = set()

    def add(self, *values) -> None:
        self.secrets.update(str(v) for v in values if v and len(str(v)) >= 4)

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            if any(s in message for s in self.secrets):
                for secret in self.secrets:
                    message = message.replace(secret, "***")
                record.msg, record.args = message, None
        return True


secret_mask = SecretMask()


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(secret_mask)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in _NOISY:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    for name in _SILENT:
        logging.getLogger(name).setLevel(logging.CRITICAL)
