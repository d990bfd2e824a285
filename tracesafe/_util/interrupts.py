"""Ctrl-C (and SIGTERM where the CLI maps it to Ctrl-C) held back for a few statements that must happen together."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """A KeyboardInterrupt that SIGINT or SIGTERM would raise inside the block is raised on leaving it instead, when
    the block ends normally (an error of its own goes on as it is). A write and the bookkeeping that records it then
    happen both or neither: an interrupt between them used to write a finished trace twice.

    Only handlers that are ``signal.default_int_handler`` are held (a program's own handler runs as it would); Python
    runs handlers in the main thread only, so elsewhere nothing is held and the block must not race the main thread.
    ``signal.signal`` runs a signal already pending before it swaps, so an interrupt can land mid-swap: the handlers
    swapped so far are put back whatever happens, and each is put back even if an interrupt lands while restoring."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous: dict[int, object] = {}
    try:
        for s in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(s) is signal.default_int_handler:
                previous[s] = signal.signal(s, lambda signum, _frame: caught.append(signum))
        yield
    finally:
        for s, handler in previous.items():
            while True:
                try:
                    signal.signal(s, handler)
                    break
                except KeyboardInterrupt:  # a handler already restored ran a pending signal: keep restoring
                    caught.append(s)
    if caught:
        raise KeyboardInterrupt


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (a scheduler's time limit, ``kill``) raises KeyboardInterrupt inside the block, as Ctrl-C does, so the
    block's own cleanup runs (temporary files, worker processes). The previous handler is put back on leaving, even
    if a signal lands while it is put back (then KeyboardInterrupt is raised after). Main thread only, as Python runs
    handlers there: elsewhere the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    interrupted = False
    try:
        yield
    finally:
        while True:
            try:
                signal.signal(signal.SIGTERM, previous)
                break
            except KeyboardInterrupt:  # a pending SIGTERM ran the handler being replaced
                interrupted = True
        if interrupted:
            raise KeyboardInterrupt
