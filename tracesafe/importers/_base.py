"""What every importer shares: the options, the item an importer yields, and located JSON reading."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from .._util.registry import Registry


class Importer(NamedTuple):
    read: Callable[[Path, ImportOptions], Iterator[Item | Bad]]
    help: str
    table: bool = False  # reads rows of fields: --response-field/--reasoning-field apply


# Built-in importers, imported on first look-up in this order (the order `tracesafe import --help` lists);
# third-party ones: an entry point in the group naming a module that adds its importer.
IMPORTERS: Registry[Importer] = Registry(
    "import format", entry_points="tracesafe.importers",
    modules=tuple(f"tracesafe.importers.{m}" for m in ("tables", "openai", "safechain", "inspect_log", "lm_eval",
                                                       "promptfoo", "garak")),
)  # fmt: skip


@dataclass
class ImportOptions:
    model: str = ""
    prompt_field: str | None = None
    response_field: str | None = None
    reasoning_field: str | None = None
    id_field: str | None = None
    category_field: str | None = None
    harm_area_field: str | None = None
    label_field: str | None = None
    on_bad_line: str = "error"
    reasoning_format: str | None = None  # a reasoning format name (tracesafe formats list); None: detect


@dataclass
class Item:
    """One generation read from a source file. ``where`` locates it (``FILE:LINE``, or ``FILE: sample …``
    where a format has no lines); ``fields`` is the object in which ``--prompt-field``, ``--id-field``,
    ``--category-field`` etc. are looked up (dotted paths reach into nested objects)."""

    where: str
    fields: dict[str, Any]
    raw: Any
    model: Any = ""
    prompt: Any = None
    prompt_id: Any = None  # the source's own id for the prompt, else a hash of the prompt, else fallback_id
    fallback_id: str = ""
    sample: int | None = None  # the source's own sample number (epoch, choice), else counted per prompt id
    reasoning: Any = None
    prompt_rendered: Any = None
    finish_reason: Any = None
    n_tokens: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    category: Any = None
    suite: Any = None
    created: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Bad:
    """A record that cannot be imported: an error, or skipped with a warning under ``--on-bad-line skip``."""

    where: str
    reason: str


MISSING = object()


def lookup(obj: Any, name: str) -> Any:
    """``obj[name]``, else follow a dotted path (``doc.category``) through nested objects; MISSING if absent."""
    if isinstance(obj, dict) and name in obj:
        return obj[name]
    for part in name.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return MISSING
        obj = obj[part]
    return obj


def text_of(content: Any) -> str | None:
    """Plain text of a chat message content: a string, or the text parts of a list of content blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [c.get("text") for c in content if isinstance(c, dict) and c.get("type") == "text"]
        if all(isinstance(p, str) for p in parts):
            return "".join(parts)
    return None


_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


class JsonDocument:
    """A JSON document read with positions: ``items`` yields ``(line, element)`` for each element of an array,
    the line being where the element starts, so that errors in single-document formats (SafeChain, promptfoo,
    inspect .json) are ``FILE:LINE`` like everywhere else."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"{path}: not UTF-8 text: {e}") from None
        if self.text.startswith("\ufeff"):  # as the JSONL readers (orjson) say it, not "no 'results' found"
            raise ValueError(f"{path}:1: UTF-8 byte order mark (BOM) is not supported")

    def value(self, keys: tuple[str, ...], default: Any = None, kind: type | None = None) -> Any:
        """The value at ``keys``, or ``default`` where a key is absent; ``kind``: the type it must have."""
        with self._located():
            i = self._find(keys)
            if i is None:
                return default
            value = _DECODER.raw_decode(self.text, i)[0]
            if kind is not None and not isinstance(value, kind):
                raise ValueError(f"{self._at(i)}: {_name(keys)} is a {type(value).__name__}, expected {kind.__name__}")
            return value

    def items(self, keys: tuple[str, ...]) -> Iterator[tuple[int, Any]]:
        """The elements of the array at ``keys`` (``()``: the document is the array)."""
        text = self.text
        with self._located():
            i = self._find(keys)
            if i is None:
                raise ValueError(f"{self.path}:1: no {_name(keys)} in the JSON document")
            if text[i : i + 1] != "[":
                raise ValueError(f"{self._at(i)}: {_name(keys)} is not a list")
            i = _WS.match(text, i + 1).end()
            line, pos = 1, 0
            if text[i : i + 1] == "]":
                return
            while True:
                line += text.count("\n", pos, i)
                pos = i
                item, i = _DECODER.raw_decode(text, i)
                yield line, item
                i = _WS.match(text, i).end()
                if text[i : i + 1] == ",":
                    i = _WS.match(text, i + 1).end()
                elif text[i : i + 1] == "]":
                    return
                else:
                    raise json.JSONDecodeError("expected ',' or ']'", text, i)

    def _at(self, i: int) -> str:
        return f"{self.path}:{self.text.count(chr(10), 0, i) + 1}"

    @contextmanager
    def _located(self):
        try:
            yield
        except json.JSONDecodeError as e:
            raise ValueError(f"{self.path}:{e.lineno}: invalid JSON: {e.msg} (column {e.colno})") from None

    def _find(self, keys: tuple[str, ...]) -> int | None:
        """Index of the value at ``keys``; sibling values are skipped (decoded, not kept)."""
        text = self.text
        i = _WS.match(text).end()
        for depth, key in enumerate(keys):
            if text[i : i + 1] != "{":
                raise ValueError(f"{self._at(i)}: expected a JSON object with {_name(keys[: depth + 1])}")
            i = _WS.match(text, i + 1).end()
            while True:
                if text[i : i + 1] == "}":
                    return None
                if text[i : i + 1] != '"':
                    raise json.JSONDecodeError("expected a key", text, i)
                name, i = _DECODER.raw_decode(text, i)
                i = _WS.match(text, i).end()
                if text[i : i + 1] != ":":
                    raise json.JSONDecodeError("expected ':'", text, i)
                i = _WS.match(text, i + 1).end()
                if name == key:
                    break
                _, i = _DECODER.raw_decode(text, i)
                i = _WS.match(text, i).end()
                if text[i : i + 1] == ",":
                    i = _WS.match(text, i + 1).end()
        return i


def _name(keys: tuple[str, ...]) -> str:
    return "the document" if not keys else "'" + ".".join(keys) + "'"
