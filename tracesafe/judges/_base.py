"""The judge protocol, the records a judge exchanges, and the name registry.

A judge is a class registered under a name with :func:`register_judge`; it receives a batch of
:class:`JudgeItem` (the user prompt as context plus the assistant text to judge) and returns one
:class:`JudgeResult` per item, in order. Judges never raise for a bad judge output: they return
``status="error"`` with the raw text, so a failure is counted, never read as safe or unsafe.
Heavy libraries are imported inside the judges, so listing judges and the registry are cheap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Literal, Protocol, runtime_checkable

from .._util.registry import Registry
from ..records import JudgeGrade, JudgeKind

# Built-in judge modules, imported on first registry use (each registers its class).
BUILTIN_MODULES = (
    "tracesafe.judges.refusal",
    "tracesafe.judges.offline",
    "tracesafe.judges.llama_guard",
    "tracesafe.judges.wildguard",
    "tracesafe.judges.harmbench",
    "tracesafe.judges.rubric",
)
ENTRY_POINT_GROUP = "tracesafe.judges"  # third-party judges: an entry point naming a module that registers


@dataclass(frozen=True, slots=True)
class JudgeItem:
    """One text to judge: ``text`` is the assistant's text (a thinking or answer segment, or a chunk
    of one); ``prompt`` is the user prompt given as context (None when the trace has none)."""

    text: str
    prompt: str | None = None
    segment: str = "answer"


@dataclass(slots=True)
class JudgeResult:
    """A judge's reading of one item. ``unsafe`` is None for refusal-only judges; ``score`` is the
    judge's continuous harm score in [0, 1] where it has one."""

    status: Literal["ok", "error"] = "ok"
    unsafe: bool | None = None
    score: float | None = None
    categories: list[str] = field(default_factory=list)
    refused: bool | None = None
    harmfulness: int | None = None
    raw_output: str | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def failed(cls, error: str, raw_output: str | None = None, **extra: Any) -> "JudgeResult":
        return cls(status="error", error=error, raw_output=raw_output, extra=dict(extra))


@runtime_checkable
class Judge(Protocol):
    """What the runner needs from a judge. Subclass :class:`BaseJudge` for the defaults."""

    name: ClassVar[str]
    version: ClassVar[str]
    kind: ClassVar[JudgeKind]  # harm: sets ``unsafe``; refusal: sets ``refused``
    grade: ClassVar[JudgeGrade]  # written onto each verdict; the report flags screening-grade numbers

    def config(self) -> dict[str, Any]:
        """Everything besides name and version that a verdict depends on (model identity, template,
        thresholds); part of the cache key, so changing any of it re-judges."""
        ...

    def chunk(self, texts: list[str]) -> list[list[tuple[int, int]]]:
        """Character spans that cover each text, each short enough for the judge's context."""
        ...

    def judge(self, items: list[JudgeItem]) -> list[JudgeResult]:
        """One result per item, same order. Must not raise for bad judge output."""
        ...

    def close(self) -> None: ...


class BaseJudge:
    """Defaults: no chunking, nothing to release. ``options`` are the judge's keyword options."""

    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    kind: ClassVar[JudgeKind] = "harm"
    grade: ClassVar[JudgeGrade] = "standard"
    description: ClassVar[str] = ""
    needs_model: ClassVar[bool] = False  # True: --judge-model / a default model id is used

    def config(self) -> dict[str, Any]:
        return {}

    def chunk(self, texts: list[str]) -> list[list[tuple[int, int]]]:
        return [[(0, len(t))] for t in texts]

    def judge(self, items: list[JudgeItem]) -> list[JudgeResult]:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class JudgeInfo:
    name: str
    cls: type
    kind: str
    grade: str
    version: str
    description: str
    needs_model: bool


# Judge classes by name (a class, not an instance: options come with get_judge).
JUDGES: Registry[type] = Registry("judge", modules=BUILTIN_MODULES, entry_points=ENTRY_POINT_GROUP)


def register_judge(name: str) -> Callable[[type], type]:
    """Class decorator: register a judge class under ``name`` (its ``name`` attribute is set)."""

    def deco(cls: type) -> type:
        JUDGES.add(name, cls)
        cls.name = name
        return cls

    return deco


def _info(name: str, cls: type) -> JudgeInfo:
    doc = (cls.__doc__ or "").strip().splitlines()
    return JudgeInfo(name=name, cls=cls, kind=getattr(cls, "kind", "harm"), grade=getattr(cls, "grade", "standard"),
                     version=getattr(cls, "version", "1"),
                     description=getattr(cls, "description", "") or (doc[0] if doc else ""),
                     needs_model=getattr(cls, "needs_model", False))  # fmt: skip


def list_judges() -> list[JudgeInfo]:
    """All registered judges, built-in first."""
    return [_info(name, cls) for name, cls in JUDGES.items()]


def get_judge(name: str, **options: Any) -> Judge:
    """Instantiate the judge registered as ``name`` with its options (cheap: models load on first use)."""
    return JUDGES.get(name)(**options)
