"""Shared code below every stage: the plugin registry (and, as they move here, atomic writes, progress,
provenance and record-field helpers). Imports nothing else from tracesafe."""

from .registry import Registry

__all__ = ["Registry"]
