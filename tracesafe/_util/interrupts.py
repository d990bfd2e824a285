"""Ctrl-C (and SIGTERM where the CLI maps it to Ctrl-C) held back for a few statements that must happen together."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """A KeyboardInterrupt a signal would raise inside the block is raised on leaving it instead. A write and the
    bookkeeping that records it then happen both or neither: an interrupt between them used to write a finished
    trace twice (the caller's cleanup wrote its buffer again). Only handlers that raise KeyboardInterrupt are
    swapped; off the main thread no signal handler runs, so nothing is needed there."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    held = [s for s in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(s) is signal.default_int_handler]
    previous = {s: signal.signal(s, lambda signum, _frame: caught.append(signum)) for s in held}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if caught:
            raise KeyboardInterrupt
