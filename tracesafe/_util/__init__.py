"""Shared code below every stage; imports nothing else from tracesafe.

- ``registry``: the one plugin registry (judges, engines, formats, importers, suites).
- ``atomic``: whole-file outputs through a temporary file that replaces the output, under its lock.
- ``progress``: the one progress bar on stderr.
- ``provenance``: content hashes and the package versions a manifest records.
- ``fields``: the prompt-field names and label values every reader of user tables accepts.
- ``interrupts``: Ctrl-C held back while a write and its bookkeeping happen together.
- ``log``: how library warnings (``logging.getLogger(__name__)``) reach the user on stderr.
"""

from . import log as _log  # noqa: F401  -- attaches the stderr handler before any tracesafe module warns
from .registry import Registry

__all__ = ["Registry"]
