"""Typed records that flow between stages, one JSON object per line.

Every record carries ``schema`` (``tracesafe.<kind>/<version>``) so a reader can tell what it holds
and refuse what it cannot read. Unknown fields are kept in ``extra`` and written back unchanged,
so a stage never drops what another tool put on a line.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from ._util.provenance import stable_id  # re-exported: ids are part of the record API

SCHEMA_VERSION = 1  # of every record but Verdict (2: typed id, key, harmfulness, judge_config, grade, kind)

Label = Literal["harmful", "benign"]
SplitStatus = Literal["complete", "unterminated", "no_thinking"]
SplitRule = Literal["api_field", "tag", "template_forced", "bare_close", "harmony", "thinking_off", "none"]
Segment = Literal["thinking", "answer", "full"]
VerdictStatus = Literal["ok", "error"]
JudgeKind = Literal["harm", "refusal"]
# standard: a validated classifier; screening: a fast triage judge, never a headline number without saying so
JudgeGrade = Literal["standard", "screening"]


INT64 = (-(2**63), 2**63 - 1)  # tables and Parquet store integers as int64

_JSON_TYPES = {str: "string", bool: "boolean", int: "integer", float: "number", dict: "object", list: "array",
               type(None): "null"}
_ANY = frozenset(_JSON_TYPES)
# A deeper check of a value whose JSON type fits: (where below the field, reason) of the first misfit, or None.
Deep = Callable[[Any], "tuple[str, str] | None"]


def json_type(v: Any, article: bool = False) -> str:
    """The JSON name of a value's type, as error messages give it: "integer", or with ``article`` "an integer"."""
    name = _JSON_TYPES.get(type(v), type(v).__name__)
    return _with_article(name) if article else name


def _with_article(name: str) -> str:
    return name if name == "null" else ("an " if name[0] in "aeiou" else "a ") + name


def _expected(allowed: frozenset[type]) -> str:
    names = sorted((_with_article(_JSON_TYPES[t]) for t in allowed if not (t is int and float in allowed)), key=lambda n: n == "null")
    return " or ".join(names)


def _misfit(allowed: frozenset[type], deep: Deep | None, v: Any) -> tuple[str, str] | None:
    if type(v) not in allowed:
        return "", f"must be {_expected(allowed)}, got {json_type(v)}"
    return None if deep is None else deep(v)


def _below(key: Any) -> str:
    # A key is data; name it only when it is a short identifier, never echo free text.
    if isinstance(key, int):
        return f"[{key}]"
    return f".{key}" if key.isidentifier() and len(key) <= 32 else ".<key>"


def _in_int64(v: Any) -> tuple[str, str] | None:
    return None if type(v) is not int or INT64[0] <= v <= INT64[1] else ("", "is out of the 64-bit integer range")


def _spec(tp: Any) -> tuple[frozenset[type], Deep | None]:
    """The exact JSON types a value of annotation ``tp`` may have (exact: a boolean is never an integer) and a
    deeper check for items, integer range and the values of a Literal (a label "unsafe" is no label: counted
    as one, it would quietly move a prompt out of every rate by label)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return _ANY, None
    if origin in (typing.Union, types.UnionType):
        specs = [_spec(a) for a in args]
        deep = [d for _, d in specs if d is not None]
        allowed = frozenset().union(*(t for t, _ in specs))
        if not deep:
            return allowed, None
        return allowed, lambda v: next((m for m in (d(v) for d in deep) if m is not None), None)
    if origin is Literal:
        allowed_values = frozenset(args)
        names = ", ".join(map(repr, args))

        def one_of(v: Any) -> tuple[str, str] | None:
            if v in allowed_values or type(v) is not type(args[0]):  # (another member of a union: its own check)
                return None
            shown = repr(v) if len(v) <= 32 else "a longer string"  # a value is data: echo only a short one
            return "", f"must be one of {names}, got {shown}"

        return frozenset({type(args[0])}), one_of
    if origin in (dict, list):
        item = _spec(args[-1]) if args else (_ANY, None)
        if item == (_ANY, None):
            return frozenset({origin}), None

        def items(v: Any) -> tuple[str, str] | None:
            if type(v) is not origin:
                return None  # another member of a union
            for key, x in v.items() if origin is dict else enumerate(v):
                m = _misfit(*item, x)
                if m is not None:
                    return _below(key) + m[0], m[1]
            return None

        return frozenset({origin}), items
    if tp is int:
        return frozenset({int}), _in_int64
    if tp is float:
        return frozenset({int, float}), None
    return frozenset({tp}), None


class _Record:
    record_kind: ClassVar[str]  # the <kind> of the schema name
    schema_version: ClassVar[int] = SCHEMA_VERSION
    _prefix: ClassVar[str]
    _specs: ClassVar[dict[str, tuple[frozenset[type], Deep | None]]]

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        cls._prefix = f"tracesafe.{cls.record_kind}/"

    @classmethod
    def schema_name(cls) -> str:
        return f"tracesafe.{cls.record_kind}/{cls.schema_version}"

    @classmethod
    def check(cls, d: dict[str, Any], fields: tuple[str, ...] | None = None) -> None:
        """Raise ValueError naming the first field of ``d`` whose JSON type does not fit the record (a
        ``reasoning`` that is a number, a ``sample`` beyond int64) or a ``schema`` of another kind. Fields
        absent from ``d`` are not checked: which ones a stage needs is the stage's business. ``fields``
        limits the check to the fields a stage reads (split passes the rest through as bytes). Readers call
        this (``check=``) so a bad line is reported as FILE:LINE (or skipped) before any stage uses it."""
        specs = cls.__dict__.get("_specs")
        if specs is None:
            hints = typing.get_type_hints(cls)
            specs = {f.name: _spec(hints[f.name]) for f in dataclasses.fields(cls) if f.name != "extra"}  # type: ignore[arg-type]
            cls._specs = specs
        schema = d.get("schema")
        if schema is not None and not str(schema).startswith(cls._prefix):
            raise ValueError(f"expected a {cls.record_kind} record, got schema {schema!r}")
        if fields is None:
            get = specs.get
            for k, v in d.items():
                spec = get(k)
                if spec is not None and (type(v) not in spec[0] or spec[1] is not None and spec[1](v) is not None):
                    cls._raise_misfit(k, v)
        else:  # split calls this per line: no more work than the few fields need
            for k in fields:
                if k in d and k in specs:  # a field of no record type (an extra) has no type to check
                    v, spec = d[k], specs[k]
                    if type(v) not in spec[0] or spec[1] is not None and spec[1](v) is not None:
                        cls._raise_misfit(k, v)

    @classmethod
    def _raise_misfit(cls, k: str, v: Any) -> None:
        where, reason = _misfit(*cls._specs[k], v)  # type: ignore[misc]
        raise ValueError(f"field {k + where!r} {reason}")

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
        cls.check(d)
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
            raise ValueError(f"{cls.record_kind} record lacks required field(s): {', '.join(missing)}")
        return cls(**known, extra=extra)


@dataclass
class Prompt(_Record):
    record_kind: ClassVar[str] = "prompt"
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
    record_kind: ClassVar[str] = "trace"
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


def check_trace_use(rec: dict[str, Any]) -> None:
    """What every stage that reads traces needs beyond the record's types (``Trace.check``), so that a file
    ``judge`` accepts is one ``report`` accepts: a string ``id``, and ``synthetic`` (a mark the demo's traces carry,
    no Trace field) true, false or null."""
    if not isinstance(rec.get("id"), str) or not rec["id"]:
        raise ValueError("trace has no string 'id' (is this a trace file?)")
    flag = rec.get("synthetic")
    if flag is not None and not isinstance(flag, bool):
        raise ValueError(f"field 'synthetic' must be true, false or null, got {json_type(flag, article=True)}")


@dataclass
class Verdict(_Record):
    """One judge's reading of one trace segment. Schema 2 types the fields every reader relies on (in
    schema 1 files they are untyped extras, ``grade`` and ``kind`` absent: readers fall back to the judge's
    name); both versions are read."""

    record_kind: ClassVar[str] = "verdict"
    schema_version: ClassVar[int] = 2
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
    id: str | None = None  # stable over reruns: (trace, segment, judge)
    key: str | None = None  # cache key: judge, version, config, prompt and text; a rerun with the same key reuses it
    harmfulness: float | None = None  # 1-5 (rubric judge)
    judge_config: dict[str, Any] | None = None
    grade: JudgeGrade | None = None
    kind: JudgeKind | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def trace_id(model: str, prompt_id: str, sample: int, params: dict[str, Any], thinking_mode: str = "normal") -> str:
    """Identity of a trace: a rerun with the same inputs computes the same id and skips it."""
    return stable_id("trace", model, prompt_id, sample, params, thinking_mode)
