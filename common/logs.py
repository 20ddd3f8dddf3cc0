"""Logging in the product's format to stdout (and optionally one file every process shares), with every
known secret masked in everything written: messages, arguments, tracebacks, stacks, uncaught exceptions
(main thread, other threads, unraisable ones) and warnings."""
from __future__ import annotations

import logging
import os
import sys
import threading
from pathlib import Path

FORMAT = "%(asctime)s [%(levelname)s] [%(name)s] %(message)s"
# Libraries that log request headers or connection URLs at DEBUG: keep them quiet whatever the level.
_NOISY = ("ccxt", "urllib3", "requests")
# pika logs every failed connection attempt as a dozen ERROR lines; common.broker says it in one.
_SILENT = ("pika",)
MASK = "***"


class SecretMask:
    """The secret values of this process (broker password, API keys); mask() hides each of them in a text."""

    def __init__(self):
        self.secrets: set[str] = set()

    def add(self, *values) -> None:
        # Shorter values would mask ordinary words and numbers all over the log.
        self.secrets.update(str(v) for v in values if v and len(str(v)) >= 4)

    def mask(self, text: str) -> str:
        # Longest first: a secret that contains another must disappear whole, not leave its remainder.
        for secret in sorted(self.secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, MASK)
        return text


secret_mask = SecretMask()


class MaskingFormatter(logging.Formatter):
    """The product's format, masked after formatting, so that the traceback (exc_info) and the stack
    (stack_info) are masked as well as the message and its arguments."""

    def __init__(self, mask: SecretMask = secret_mask):
        super().__init__(FORMAT)
        self.secret_mask = mask

    def format(self, record: logging.LogRecord) -> str:
        return self.secret_mask.mask(super().format(record))


class _MaskedErrorReport:
    """logging's own report of a record it failed to write prints the record's message and arguments to
    stderr unmasked: report the failure without them."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's name)
        if not (logging.raiseExceptions and sys.stderr):
            return
        error = sys.exc_info()[1]
        sys.stderr.write(secret_mask.mask(f"--- Logging error: {type(error).__name__}: {error} "
                                          f"(record of {record.name} at {record.pathname}:{record.lineno})\n"))


class StdoutHandler(_MaskedErrorReport, logging.StreamHandler):
    def __init__(self):
        super().__init__(sys.stdout)


class SharedFileHandler(_MaskedErrorReport, logging.Handler):
    """Appends each record to a file that several processes write at once, in one write(2) on an O_APPEND
    descriptor: the kernel puts every write at the end of the file, so the lines of different processes never
    overwrite each other, and a line is never split by another process's line."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        # 0640 whatever the umask: the log names hosts, symbols and errors, none of which is for other users.
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            data = (self.format(record) + "\n").encode("utf-8", "replace")
            while data:
                data = data[os.write(self._fd, data):]
        except Exception:  # noqa: BLE001 (logging's contract: report, never raise)
            self.handleError(record)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        super().close()


def setup_logging(level: str = "INFO", file: str | Path | None = None) -> None:
    """Log at `level` to stdout and, with `file`, also append to that file (config.log_file). Installs the
    hooks that log uncaught exceptions masked. Raises ConfigError when the file cannot be opened."""
    formatter = MaskingFormatter()
    handlers: list[logging.Handler] = [StdoutHandler()]
    if file:
        handlers.append(_open_shared_file(Path(file)))
    for handler in handlers:
        handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in root.handlers:
        old.close()
    root.handlers[:] = handlers
    root.setLevel(level)
    for name in _NOISY:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    for name in _SILENT:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    logging.captureWarnings(True)  # warnings.warn() would print to stderr unmasked
    install_exception_hooks()


def _open_shared_file(path: Path) -> SharedFileHandler:
    try:
        return SharedFileHandler(path)
    except OSError as e:
        # Imported here, not at the top: common.config imports common.exchanges, which may import this module.
        from common.config import ConfigError
        raise ConfigError(f"logging.file: cannot open {path} for appending: {e.strerror}") from None


# -- uncaught exceptions: through logging (masked, and into the shared file) instead of raw to stderr --------
_uncaught = logging.getLogger("uncaught")


def _log_uncaught(exc_type, exc, tb) -> None:
    _uncaught.critical("Uncaught exception, exiting", exc_info=(exc_type, exc, tb))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:  # threading's default hook ignores it too
        return
    name = args.thread.name if args.thread is not None else "?"
    _uncaught.critical("Uncaught exception in thread %s", name,
                       exc_info=(args.exc_type, args.exc_value, args.exc_traceback))


def _log_unraisable(args) -> None:
    _uncaught.error("%s: %r", args.err_msg or "Exception ignored in", args.object,
                    exc_info=(args.exc_type, args.exc_value, args.exc_traceback) if args.exc_type else None)


def install_exception_hooks() -> None:
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread
    sys.unraisablehook = _log_unraisable


def printable(text, limit: int = 80) -> str:
    """Text from the wire, fit for one log line: escapes newlines and control characters, so that a crafted
    symbol or routing key cannot forge a log line, and cuts it to `limit` characters. Secrets are masked
    before the cut: the log's own mask would not recognise a secret cut in half."""
    return ascii(secret_mask.mask(str(text))[:limit])[1:-1]
