"""No secret reaches a log: every way a process writes text (log messages, tracebacks, stacks, uncaught
exceptions in any thread, warnings, logging's own error reports) goes through the mask. Each test runs a real
Python process that registers a secret and then makes it appear in that way, and reads everything the process
wrote to stdout and stderr (supervisord joins them into one log file: redirect_stderr=true)."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from tests.conftest import ROOT


def run_logging(code: str, secret: str, level: str = "DEBUG", file: Path | None = None,
                register: bool = True) -> subprocess.CompletedProcess:
    """`code` run after setup_logging() in a fresh interpreter (the secret registered in the mask), stdout and
    stderr joined as supervisord joins them."""
    prelude = textwrap.dedent(f"""
        import logging, sys, threading, warnings
        from common.logs import secret_mask, setup_logging
        SECRET = {secret!r}
        setup_logging({level!r}, {str(file) if file else None!r})
        if {register!r}:
            secret_mask.add(SECRET)
        log = logging.getLogger("worker")
    """)
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)


@pytest.fixture
def secret() -> str:
    return f"pw-{uuid.uuid4().hex}"


def assert_masked(output: str, secret: str, *expected: str) -> None:
    assert secret not in output, output
    assert "***" in output, output  # the secret was there to mask: the test proves something
    for text in expected:
        assert text in output, output


def test_exception_logged_with_its_traceback_is_masked(secret):
    out = run_logging("""
        try:
            raise ConnectionError(f"login refused for password {SECRET}")
        except ConnectionError:
            log.exception("Cannot connect with %s", SECRET)
        log.error("again, with exc_info", exc_info=ConnectionError(SECRET))
        log.debug("stack of %s", "this call", stack_info=True)
        log.info("done")
    """, secret)
    assert out.returncode == 0, out.stdout
    assert_masked(out.stdout, secret, "Cannot connect with ***", "ConnectionError: login refused for password ***",
                  "Stack (most recent call last)", "[worker] done")


def test_uncaught_exception_is_masked_and_still_ends_the_process(secret):
    out = run_logging("""
        log.info("starting")
        raise RuntimeError(f"cannot use {SECRET}")
    """, secret)
    assert out.returncode == 1, out.stdout
    assert_masked(out.stdout, secret, "[CRITICAL] [uncaught] Uncaught exception, exiting",
                  "RuntimeError: cannot use ***")


def test_uncaught_exception_in_a_thread_is_masked(secret):
    out = run_logging("""
        def fetch():
            raise ValueError(f"bad key {SECRET}")
        thread = threading.Thread(target=fetch, name="book-1")
        thread.start()
        thread.join()
        log.info("main thread carries on")
    """, secret)
    assert out.returncode == 0, out.stdout
    assert_masked(out.stdout, secret, "Uncaught exception in thread book-1", "ValueError: bad key ***",
                  "main thread carries on")


def test_unraisable_exception_and_warning_are_masked(secret):
    out = run_logging("""
        class Connection:
            def __del__(self):
                raise OSError(f"close failed for {SECRET}")
        Connection()
        warnings.warn(f"insecure URL amqp://user:{SECRET}@host")
        log.info("done")
    """, secret)
    assert out.returncode == 0, out.stdout
    assert_masked(out.stdout, secret, "OSError: close failed for ***", "UserWarning: insecure URL amqp://user:***@host",
                  "done")


def test_a_record_logging_cannot_format_is_reported_masked(secret):
    # logging's own report of a failed record prints the record's arguments: here the secret.
    out = run_logging("""
        log.info("port %d", SECRET)
        log.info("carries on")
    """, secret)
    assert out.returncode == 0, out.stdout
    assert secret not in out.stdout, out.stdout
    assert "Logging error: TypeError" in out.stdout and "carries on" in out.stdout, out.stdout


# -- logging.file: one file every process appends to ----------------------------------------------------------
def test_processes_append_to_one_shared_file_masked(tmp_path, secret):
    shared = tmp_path / "logs" / "app.log"  # the folder does not exist yet: made on demand
    runs = [run_logging(f"""
        log = logging.getLogger({name!r})
        for i in range(200):
            log.info("line %d with %s", i, SECRET)
    """, secret, file=shared) for name in ("controller", "bybit")]
    assert all(r.returncode == 0 for r in runs), [r.stdout for r in runs]
    text = shared.read_text()
    assert secret not in text and secret not in runs[0].stdout
    lines = text.splitlines()
    assert len(lines) == 400
    assert sum("[controller] line" in line for line in lines) == 200
    assert sum("[bybit] line" in line for line in lines) == 200
    assert all(line.endswith(" with ***") for line in lines)
    # Appended, never truncated: a restarted process keeps what the others wrote.
    run_logging('log.warning("restarted")', secret, file=shared)
    assert shared.read_text().startswith(text) and shared.read_text().endswith("[WARNING] [worker] restarted\n")


def test_uncaught_exception_reaches_the_shared_file(tmp_path, secret):
    shared = tmp_path / "app.log"
    out = run_logging('raise RuntimeError(f"cannot use {SECRET}")', secret, file=shared)
    assert out.returncode == 1
    assert_masked(shared.read_text(), secret, "Uncaught exception, exiting", "RuntimeError: cannot use ***")
