"""Typed records that flow between stages, one JSON object per line.

Every record carries ``schema`` (``tracesafe.<kind>/<version>``) so a reader can tell what it holds
and refuse what it cannot read. Unknown fields are kept in ``extra`` and written back unchanged,
so a stage never drops what another tool put on a line.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import orjson

SCHEMA_VERSION = 1

Label = Literal["harmful", "benign"]
SplitStatus = Literal["complete", "unterminated", "no_thinking"]
SplitRule = Literal["api_field", "tag", "template_forced", "bare_close", "harmony", "thinking_off", "none"]
Segment = Literal["thinking", "answer", "full"]
VerdictStatus = Literal["ok", "error"]


def stable_id(*parts: Any, n: int = 16) -> str:
    """Content hash of ``parts`` (JSON with sorted keys), hex, ``n`` chars: same inputs, same id."""
    blob = orjson.dumps(list(parts), option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return hashlib.sha256(blob).hexdigest()[:n]


class _Record:
    kind: ClassVar[str]

    @classmethod
    def schema_name(cls) -> str:
        return f"tracesafe.{cls.kind}/{SCHEMA_VERSION}"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"schema": self.schema_name()}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            if f.name == "extra":
                continue
            d[f.name] = getattr(self, f.name)
        d.update(getattr(self, "extra"))
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        schema = d.get("schema")
        if schema is not None and not str(schema).startswith(f"tracesafe.{cls.kind}/"):
            raise ValueError(f"expected a {cls.kind} record, got schema {schema!r}")
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        known = {k: v for k, v in d.items() if k in names and k != "extra"}
        extra = {k: v for k, v in d.items() if k not in names and k != "schema"}
        missing = [
            f.name
            for f in dataclasses.fields(cls)  # type: ignore[arg-type]
            if f.name not in known
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING  # type: ignore[misc]
        ]
        if missing:
            raise ValueError(f"{cls.kind} record lacks required field(s): {', '.join(missing)}")
        return cls(**known, extra=extra)


@dataclass
class Prompt(_Record):
    kind: ClassVar[str] = "prompt"
    id: str
    text: str
    suite: str = "custom"
    category: str | None = None
    harm_area: str | None = None
    label: Label | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Trace(_Record):
    kind: ClassVar[str] = "trace"
    id: str
    prompt_id: str
    raw: str
    model: str = ""
    backend: str = ""
    sample: int = 0
    prompt: str | None = None  # the user prompt text, kept so judges need no suite look-up
    params: dict[str, Any] = field(default_factory=dict)
    prompt_rendered: str | None = None
    reasoning: str | None = None
    thinking: str | None = None
    answer: str | None = None
    split_status: SplitStatus | None = None
    split_rule: SplitRule | None = None
    split_format: str | None = None
    finish_reason: str | None = None
    n_tokens: dict[str, int | None] = field(default_factory=dict)
    suite: str | None = None
    category: str | None = None
    harm_area: str | None = None
    label: Label | None = None
    created: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Verdict(_Record):
    kind: ClassVar[str] = "verdict"
    trace_id: str
    segment: Segment
    judge: str
    judge_version: str
    status: VerdictStatus
    unsafe: bool | None = None
    score: float | None = None
    categories: list[str] = field(default_factory=list)
    refused: bool | None = None
    spans: list[list[float]] = field(default_factory=list)
    raw_output: str | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def trace_id(model: str, prompt_id: str, sample: int, params: dict[str, Any], thinking_mode: str = "normal") -> str:
    """Identity of a trace: a rerun with the same inputs computes the same id and skips it."""
    return stable_id("trace", model, prompt_id, sample, params, thinking_mode)
