"""How library warnings reach the user.

Library code logs through ``logging.getLogger(__name__)`` and never prints. tracesafe is used from its CLI
first, so its warnings (a skipped bad line, a torn tail cut) must reach the user on stderr as
``warning: …`` as ``print`` did, also when a host (pytest, a notebook) has configured the root logger, where
logging's lastResort handler stays silent. :func:`setup` attaches that one handler to the ``tracesafe``
logger; it runs at import, and the CLI entry point calls it again to choose the level. An application
that routes logging itself calls ``setup(stderr=False)``; records still propagate to its handlers.
"""

from __future__ import annotations

import logging
import sys

ROOT = "tracesafe"


class _StderrHandler(logging.Handler):
    """Writes to the current ``sys.stderr``, looked up per record: click's test runner and pytest swap it."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:  # a closed stream must not break the run that warned
            self.handleError(record)


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {super().format(record)}"


HANDLER = _StderrHandler()
HANDLER.setFormatter(_Formatter("%(message)s"))


def setup(level: int | str = logging.WARNING, *, stderr: bool = True) -> None:
    """Show tracesafe's log records at ``level`` and above on stderr as ``LEVEL: message`` (idempotent);
    ``stderr=False`` takes the handler away again."""
    logger = logging.getLogger(ROOT)
    HANDLER.setLevel(level)
    if logger.getEffectiveLevel() > HANDLER.level:  # never raises it: a host's DEBUG stays DEBUG
        logger.setLevel(HANDLER.level)
    if stderr:
        if HANDLER not in logger.handlers:
            logger.addHandler(HANDLER)
    else:
        logger.removeHandler(HANDLER)


setup()
