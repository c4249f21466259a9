"""SIGTERM (a cluster's preemption, `timeout`, `kill`) is handled like Ctrl-C: the same message, the same
state kept, so a rerun resumes. Exit code 143 (128 + SIGTERM) as a shell reports a terminated process.

It lives in `corpus/` because both stages' commands use it (`pcle train` and `pcle prompts generate`) and
stage 1 may import the recognizer only through this package (tests/test_corpus_contract.py)."""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Coroutine
from contextlib import contextmanager
from typing import Any, TypeVar

EXIT_CTRL_C, EXIT_SIGTERM = 130, 143
T = TypeVar("T")


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


def run_async(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)` with SIGTERM acting as asyncio's Ctrl-C: the main task is cancelled (calls in flight
    end, their `finally` blocks run), then `Terminated` is raised. Raising from the signal handler instead
    lands in whichever task runs at that moment, which asyncio then reports as "Task exception was never
    retrieved" with a traceback."""
    return asyncio.run(_cancel_on_sigterm(main))


async def _cancel_on_sigterm(main: Coroutine[Any, Any, T]) -> T:
    if threading.current_thread() is not threading.main_thread():
        return await main
    loop, task = asyncio.get_running_loop(), asyncio.current_task()
    previous = signal.getsignal(signal.SIGTERM)
    received: list[bool] = []

    def on_sigterm() -> None:
        received.append(True)
        task.cancel()

    loop.add_signal_handler(signal.SIGTERM, on_sigterm)
    try:
        result = await main
    except asyncio.CancelledError:
        if received:
            raise Terminated() from None
        raise
    finally:
        loop.remove_signal_handler(signal.SIGTERM)  # it leaves SIG_DFL: put back the handler of the caller
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if received:  # `main` swallowed the cancellation
        raise Terminated()
    return result
