"""Judging a batch of whole texts, shared by the judge stage and ``judge-eval``: build the judges from
options, chunk each text to the judge's context, call the judge once for all chunks, and aggregate the
chunk results into one result per text."""

from __future__ import annotations

import inspect
from collections import Counter
from typing import Any, NamedTuple

from ..engines.registry import EnginePool
from ._base import Judge, JudgeItem, JudgeResult, get_judge, list_judges


class Judged(NamedTuple):
    results: list[JudgeResult]  # one per text, in order
    calls: int  # items the judge was called on (chunks)


def judge_texts(judge: Judge, items: list[JudgeItem]) -> Judged:
    """One aggregated result per item (each item a whole text; long ones are judged in chunks)."""
    spans = judge.chunk([it.text for it in items])
    chunks, owner = [], []
    for i, (it, sp) in enumerate(zip(items, spans)):
        for a, b in sp:
            chunks.append(JudgeItem(text=it.text[a:b], prompt=it.prompt, segment=it.segment))
            owner.append(i)
    results = judge.judge(chunks)
    if len(results) != len(chunks):
        raise RuntimeError(f"judge {judge.name} returned {len(results)} results for {len(chunks)} items")
    by_item: list[list[JudgeResult]] = [[] for _ in items]
    for i, r in zip(owner, results):
        by_item[i].append(r)
    out = []
    for rs, sp in zip(by_item, spans):
        agg = aggregate(rs, sp)
        if len(sp) > 1:
            agg.extra["n_chunks"] = len(sp)
        out.append(agg)
    return Judged(out, len(chunks))


def aggregate(results: list[JudgeResult], spans: list[tuple[int, int]]) -> JudgeResult:
    """Segment verdict from its chunks: unsafe if any chunk is unsafe, else error if any chunk failed;
    score and harmfulness are the max; refusal is read from the opening chunk."""
    if len(results) == 1:
        r = results[0]
        if "spans" not in r.extra and r.score is not None:
            r.extra["spans"] = [[spans[0][0], spans[0][1], r.score]]
        return r
    ok = [r for r in results if r.status == "ok"]
    errors = [r for r in results if r.status != "ok"]
    chunk_spans = []
    for (a, b), r in zip(spans, results):
        chunk_spans.extend(r.extra.get("spans") or [[a, b, r.score]])
    scores = [r.score for r in ok if r.score is not None]
    harms = [r.harmfulness for r in ok if r.harmfulness is not None]
    any_unsafe = any(r.unsafe for r in ok)
    cats = list(dict.fromkeys(c for r in ok for c in r.categories))
    chunks = [{"span": [a, b], "status": r.status, "unsafe": r.unsafe, "score": r.score, "refused": r.refused,
               "raw_output": r.raw_output, "error": r.error} for (a, b), r in zip(spans, results)]  # fmt: skip
    extra: dict[str, Any] = {"spans": chunk_spans, "chunks": chunks}
    usage: Counter = Counter()
    for r in results:
        usage.update(r.extra.get("usage") or {})
    if usage:
        extra["usage"] = dict(usage)
    if errors and not any_unsafe:
        return JudgeResult(status="error", error=f"{len(errors)} of {len(results)} chunks failed: {errors[0].error}",
                           raw_output=errors[0].raw_output, extra=extra)  # fmt: skip
    if errors:
        extra["chunk_errors"] = len(errors)
    top = max(ok, key=lambda r: (bool(r.unsafe), r.score if r.score is not None else -1.0))
    unsafe = any_unsafe if any(r.unsafe is not None for r in ok) else None
    return JudgeResult(
        status="ok", unsafe=unsafe, score=max(scores) if scores else None, categories=cats,
        refused=results[0].refused, harmfulness=max(harms) if harms else None, raw_output=top.raw_output, extra=extra,
    )  # fmt: skip


def accepted_options(cls: type) -> set[str] | None:
    """Keyword options a judge class accepts (None: it takes **kwargs)."""
    params = inspect.signature(cls.__init__).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return None
    return {n for n in params if n != "self"}


_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def _option_value(cls: type, judge: str, key: str, value: Any) -> Any:
    """``value`` as judge option ``key`` of ``cls`` takes it: a bool option accepts true/false (yes/no, on/off, 1/0,
    any case) and nothing else — any non-empty string would otherwise read as true (``stage2=False`` left it on);
    a number option refuses text. ValueError names the option."""
    import typing

    try:
        hint = typing.get_type_hints(cls.__init__).get(key)
    except Exception:  # noqa: BLE001 - an annotation that does not resolve: take the value as it is
        return value
    args = set(typing.get_args(hint)) or {hint}
    if bool in args and not isinstance(value, bool):
        text = str(value).strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise ValueError(f"-O {judge}.{key}={value}: expected true or false")
    if args & {int, float} and isinstance(value, str) and not args & {str}:
        raise ValueError(f"-O {judge}.{key}={value}: expected a number")
    return value


def check_judges(names: list[str]) -> None:
    """ValueError unless ``names`` names at least one judge, each registered."""
    known = sorted(i.name for i in list_judges())
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise ValueError((f"unknown judge(s) {unknown}" if unknown else "name at least one judge") + f"; known: {', '.join(known)}")


def build_judges(
    names: list[str],
    judge_model: str | dict[str, str] | None = None,
    backend: str | None = None,
    engines: EnginePool | None = None,
    **options: Any,
) -> list:
    """Instantiate judges: an option goes to every judge that accepts it, ``options[NAME]`` (a dict) to
    one judge only, ``judge_model`` (one path/id, or {judge: path}) to judges that need a model. Judges that
    run on an engine take it from ``engines``, the caller's pool (which shares and closes them)."""
    check_judges(names)
    infos = {i.name: i for i in list_judges()}
    per_judge = {k: options.pop(k) for k in list(options) if k in infos and isinstance(options[k], dict)}
    used: set[str] = set()
    judges = []
    for name in names:
        info = infos[name]
        acc = accepted_options(info.cls)
        kw: dict[str, Any] = {}
        for k, v in options.items():
            if acc is None or k in acc:
                kw[k] = v
                used.add(k)
        model = judge_model.get(name) if isinstance(judge_model, dict) else judge_model
        if model is not None and info.needs_model:
            kw["model"] = model
        if backend is not None and (acc is None or "backend" in acc):
            kw["backend"] = backend
        own = per_judge.get(name, {})
        bad = sorted(set(own) - acc) if acc is not None else []
        if bad:
            raise ValueError(f"-O {name}.{bad[0]}: not an option of judge {name!r} (its options: {', '.join(sorted(acc))})")
        kw.update(own)
        kw = {k: _option_value(info.cls, name, k, v) for k, v in kw.items()}
        judge = get_judge(name, **kw)
        if engines is not None and hasattr(judge, "use_engines"):
            judge.use_engines(engines)
        judges.append(judge)
    unused = sorted(set(options) - used)
    if unused:
        shown = ", ".join("-E (engine options)" if k == "engine_options" else f"-O {k}" for k in unused)
        raise ValueError(f"{shown}: not accepted by any of the judges {names}")
    return judges
