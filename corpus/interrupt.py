"""SIGTERM (a cluster's preemption, `timeout`, `kill`) is handled like Ctrl-C: the same message, the same
state kept, so a rerun resumes. Exit code 143 (128 + SIGTERM) as a shell reports a terminated process.

It lives in `corpus/` because both stages' commands use it (`pcle train` and `pcle prompts generate`) and
stage 1 may import the recognizer only through this package (tests/test_corpus_contract.py)."""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

EXIT_CTRL_C, EXIT_SIGTERM = 130, 143


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when SIGTERM arrives; every handler of KeyboardInterrupt catches it."""


def exit_code(e: BaseException) -> int:
    return EXIT_SIGTERM if isinstance(e, Terminated) else EXIT_CTRL_C


def _raise(signum, frame) -> None:
    raise Terminated()


@contextmanager
def sigterm_as_interrupt():
    """While inside, SIGTERM raises `Terminated`; the previous handler is restored on the way out."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
