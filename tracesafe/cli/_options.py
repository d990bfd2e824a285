"""Options and KEY=VALUE parsing that several commands share, declared once."""

from __future__ import annotations

import json
from collections.abc import Callable
from enum import Enum
from typing import Annotated, Any, Optional

import typer

from ._app import fail


class OnBadLine(str, Enum):
    error = "error"
    skip = "skip"


BadLineOpt = Annotated[
    OnBadLine, typer.Option("--on-bad-line", help="A malformed input line: stop with FILE:LINE (error) or skip it.")
]
ReasoningFormatOpt = Annotated[Optional[str], typer.Option("--format", help="Reasoning format of the outputs (a name from `tracesafe formats list`); default (or `auto`): detect per record.")]
EngineOptionOpt = Annotated[list[str], typer.Option("-E", "--engine-option", help="Engine-specific setting KEY=VALUE passed to the engine as it is (vLLM: an engine argument, e.g. -E max_num_seqs=64, -E kv_cache_dtype=fp8); VALUE is read as JSON when it parses, else as a string. Repeatable; recorded in the manifest.")]


def toml_value(text: str) -> Any:
    """A TOML value (10, true, "a", [1, 2]), or the text itself as a bare string."""
    import tomllib

    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def json_value(text: str) -> Any:
    """A JSON value (64, true, "a", {"k": 1}), or the text itself as a bare string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def key_values(values: list[str], flag: str, example: str, parse: Callable[[str], Any] = toml_value) -> dict[str, Any]:
    """Repeated ``flag KEY=VALUE`` options as a dict (the last of a repeated key wins)."""
    out: dict[str, Any] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            fail(f"{flag} {item!r}: expected KEY=VALUE, e.g. {example}")
        out[key] = parse(value)
    return out


def engine_options(values: list[str]) -> dict[str, Any]:
    """``-E KEY=VALUE`` options: JSON values, else strings."""
    return key_values(values, "-E", "max_num_seqs=64", json_value)


def plain(value: Any) -> Any:
    """A command's value as the library takes it: an Enum choice as its string."""
    return value.value if isinstance(value, Enum) else value
