"""The one progress bar: rich on stderr, nothing off a terminal (logs and pipes get the summary line only)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def progress(
    description: str,
    total: int,
    *,
    completed: int = 0,
    unit: str = "items",
    enabled: bool = True,
    transient: bool = True,
) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n=1)`` for a bar of ``total`` steps (``unit="bytes"``: sizes and a transfer speed);
    the bar closes with the block. A no-op callback when disabled, when stderr is not a terminal, or when
    there is nothing to do. ``transient``: the bar vanishes at the end instead of staying as a summary."""
    if not enabled or total <= 0 or not sys.stderr.isatty():
        yield lambda n=1: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        TimeElapsedColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    counts = (DownloadColumn(), TransferSpeedColumn()) if unit == "bytes" else (MofNCompleteColumn(),)
    elapsed = () if transient else (TimeElapsedColumn(),)
    bar = Progress("[progress.description]{task.description}", BarColumn(), *counts, *elapsed, TimeRemainingColumn(),
                   console=Console(stderr=True), transient=transient)  # fmt: skip
    task = bar.add_task(description, total=total, completed=completed)
    with bar:
        yield lambda n=1: bar.advance(task, n)
