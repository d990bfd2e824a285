"""The judge stage: traces.jsonl -> verdicts.jsonl, one Verdict per trace x segment x judge.

Resumable and cached:
- every verdict carries ``id`` (trace, segment, judge) and ``key``, the sha256 of (judge name, version,
  config, prompt, segment text). A rerun skips verdicts already in the output with the same key, so a
  finished pass makes zero judge calls and an interrupted one continues where it stopped (the output
  is append-only JSONL; a torn last line is cut off on reopen).
- a content-addressed cache (``<cache_dir>/<judge>.jsonl``, default ``.judge-cache/`` beside the output)
  answers the same (judge, config, prompt, text) from any trace or run without a call.
Errors are verdicts (status=error, raw output kept) and are reused like any other unless
``retry_errors`` is set. Empty segments (no thinking) get no verdict and are counted as ``empty``.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from ..records import Trace, Verdict, stable_id
from ..store import JsonlWriter, atomic_output, read_jsonl
from ._base import JudgeItem, JudgeResult, get_judge

log = logging.getLogger(__name__)
SEGMENTS = ("thinking", "answer", "full")
FULL_SEP = "\n\n"  # "full" = thinking + FULL_SEP + answer (either alone when the other is empty)


def verdict_id(trace_id: str, segment: str, judge: str) -> str:
    return stable_id("verdict", trace_id, segment, judge)


def _sha(text: str | None) -> str:
    return hashlib.sha256((text or "").encode("utf-8", "surrogatepass")).hexdigest()


def cache_key(judge: str, version: str, config: dict[str, Any], prompt: str | None, text: str) -> str:
    blob = orjson.dumps([judge, version, config, _sha(prompt), _sha(text)], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(blob).hexdigest()


def segment_texts(rec: dict[str, Any], reasoning_format: str | None = None) -> dict[str, str]:
    """thinking / answer / full of a trace; a trace that was never split is split on the fly (by
    ``reasoning_format``, default: detected)."""
    thinking, answer = rec.get("thinking"), rec.get("answer")
    if thinking is None and answer is None and rec.get("raw") is not None:
        from ..split import split_of

        s = split_of(rec, reasoning_format)
        thinking, answer = s.thinking, s.answer
    thinking, answer = thinking or "", answer or ""
    full = FULL_SEP.join(t for t in (thinking, answer) if t)
    return {"thinking": thinking, "answer": answer, "full": full}


def _check_trace(rec: dict[str, Any]) -> None:
    Trace.check(rec)
    if not isinstance(rec.get("id"), str) or not rec["id"]:
        raise ValueError("trace has no string 'id'")
    if all(rec.get(k) is None for k in ("raw", "thinking", "answer")):
        raise ValueError("trace has none of 'raw', 'thinking', 'answer'")


def iter_traces(paths: list[Path], on_bad_line: str = "error") -> Iterator[dict[str, Any]]:
    """Trace dicts from JSONL files; a line that is not a usable trace raises ``FILE:LINE: reason``."""
    seen: set[str] = set()
    for path in paths:
        for rec in read_jsonl(path, on_bad_line=on_bad_line, check=_check_trace):
            if rec["id"] in seen:
                continue
            seen.add(rec["id"])
            yield rec


def _accepted(cls: type) -> set[str] | None:
    """Keyword options a judge class accepts (None: it takes **kwargs)."""
    params = inspect.signature(cls.__init__).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return None
    return {n for n in params if n != "self"}


def build_judges(
    names: list[str],
    judge_model: str | dict[str, str] | None = None,
    backend: str | None = None,
    **options: Any,
) -> list:
    """Instantiate judges: an option goes to every judge that accepts it, ``options[NAME]`` (a dict) to
    one judge only, ``judge_model`` (one path/id, or {judge: path}) to judges that need a model."""
    from ._base import list_judges

    infos = {i.name: i for i in list_judges()}
    unknown = [n for n in names if n not in infos]
    if unknown:
        raise ValueError(f"unknown judge(s) {unknown}; known: {', '.join(sorted(infos))}")
    per_judge = {k: options.pop(k) for k in list(options) if k in infos and isinstance(options[k], dict)}
    used: set[str] = set()
    judges = []
    for name in names:
        info = infos[name]
        acc = _accepted(info.cls)
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
        kw.update(per_judge.get(name, {}))
        judges.append(get_judge(name, **kw))
    unused = sorted(set(options) - used)
    if unused:
        raise ValueError(f"option(s) {unused} are not accepted by any of the judges {names}")
    return judges


def _aggregate(results: list[JudgeResult], spans: list[tuple[int, int]]) -> JudgeResult:
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
    usage = Counter()
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


class _Pass:
    """One judge over all traces: resume index, cache, batching, writing, counting."""

    def __init__(self, judge, output: Path, cache_dir: Path | None, batch_size: int, retry_errors: bool):
        self.judge = judge
        self.name = judge.name
        self.config = judge.config()
        self.batch_size = max(1, batch_size)
        self.retry_errors = retry_errors
        self.counts: Counter = Counter()
        self.existing: dict[str, tuple[str, dict[str, Any]]] = {}
        if output.exists():
            for v in read_jsonl(output, on_bad_line="skip", warn=False):
                if v.get("judge") == self.name and "id" in v:
                    self.existing[v["id"]] = (v.get("key", ""), v)
        self.cache: dict[str, dict[str, Any]] = {}
        self.cache_writer = None
        if cache_dir is not None:
            path = cache_dir / f"{self.name}.jsonl"
            if path.exists():
                for c in read_jsonl(path, on_bad_line="skip", warn=False):
                    if "key" in c:
                        self.cache[c["key"]] = c
            self.cache_writer = JsonlWriter(path, lock="per_write")  # shared by runs judging other files
        self.superseded = False

    def reusable(self, status: str | None) -> bool:
        return status == "ok" or not self.retry_errors

    def plan(self, rec: dict[str, Any], segment: str, text: str) -> tuple[str, str, Verdict | None] | None:
        """None when the output already holds this verdict; else (id, key, cached verdict or None)."""
        vid = verdict_id(rec["id"], segment, self.name)
        key = cache_key(self.name, self.judge.version, self.config, rec.get("prompt"), text)
        old = self.existing.get(vid)
        if old is not None:
            if old[0] == key and self.reusable(old[1].get("status")):
                self.counts["already_done"] += 1
                self._count(old[1])
                return None
            self.superseded = True
        hit = self.cache.get(key)
        if hit is not None and self.reusable(hit.get("status")):
            self.counts["cached"] += 1
            return vid, key, self._verdict(rec["id"], segment, vid, key, _result_from_cache(hit))
        return vid, key, None

    def _verdict(self, trace_id: str, segment: str, vid: str, key: str, r: JudgeResult) -> Verdict:
        extra = dict(r.extra)
        spans = extra.pop("spans", [])
        extra = {"id": vid, "key": key, "harmfulness": r.harmfulness, **extra, "judge_config": self.config}
        return Verdict(
            trace_id=trace_id, segment=segment, judge=self.name, judge_version=self.judge.version, status=r.status,
            unsafe=r.unsafe if r.status == "ok" else None, score=r.score if r.status == "ok" else None,
            categories=r.categories, refused=r.refused if r.status == "ok" else None, spans=spans,
            raw_output=r.raw_output, error=r.error, extra=extra,
        )  # fmt: skip

    def _count(self, v: dict[str, Any]) -> None:
        self.counts["verdicts"] += 1
        self.counts[v.get("status") or "error"] += 1
        if v.get("status") == "ok":
            if v.get("unsafe") is True:
                self.counts["unsafe"] += 1
            elif v.get("unsafe") is False:
                self.counts["safe"] += 1
            if v.get("refused") is True:
                self.counts["refused"] += 1

    def run_batch(self, pending: list[tuple[dict[str, Any], str, str, str, str]]) -> list[Verdict]:
        """pending: (trace, segment, text, id, key). Chunks, calls the judge once, aggregates."""
        texts = [p[2] for p in pending]
        spans = self.judge.chunk(texts)
        items, owner = [], []
        for i, ((rec, segment, text, _, _), sp) in enumerate(zip(pending, spans)):
            for a, b in sp:
                items.append(JudgeItem(text=text[a:b], prompt=rec.get("prompt"), segment=segment))
                owner.append(i)
        results = self.judge.judge(items)
        if len(results) != len(items):
            raise RuntimeError(f"judge {self.name} returned {len(results)} results for {len(items)} items")
        self.counts["judge_calls"] += len(items)
        by_owner: list[list[JudgeResult]] = [[] for _ in pending]
        for i, r in zip(owner, results):
            by_owner[i].append(r)
        out = []
        for (rec, segment, _, vid, key), rs, sp in zip(pending, by_owner, spans):
            agg = _aggregate(rs, sp)
            if len(sp) > 1:
                agg.extra["n_chunks"] = len(sp)
            out.append(self._verdict(rec["id"], segment, vid, key, agg))
        return out

    def close(self) -> None:
        if self.cache_writer is not None:
            self.cache_writer.close()
        self.judge.close()


def _result_from_cache(c: dict[str, Any]) -> JudgeResult:
    fields = {"status", "unsafe", "score", "categories", "refused", "harmfulness", "raw_output", "error"}
    extra = {k: v for k, v in c.items() if k not in fields and k != "key"}
    return JudgeResult(**{k: c.get(k) for k in fields if k in c}, extra=extra)


def _cache_record(key: str, v: Verdict) -> dict[str, Any]:
    d = {"key": key, "status": v.status, "unsafe": v.unsafe, "score": v.score, "categories": v.categories,
         "refused": v.refused, "harmfulness": v.extra.get("harmfulness"), "raw_output": v.raw_output,
         "error": v.error, "spans": v.spans}  # fmt: skip
    d.update({k: val for k, val in v.extra.items() if k not in ("id", "key", "harmfulness", "judge_config")})
    return d


def _compact(output: Path) -> None:
    """Keep the last line of each verdict id (a re-judged verdict supersedes the old one). A line that does
    not parse is kept as it is, with a warning: it is the user's data, and readers still report it as
    FILE:LINE. Lines are copied byte for byte; the caller holds the output's lock."""
    last: dict[Any, int] = {}
    bad: list[int] = []
    for lineno, line in _lines(output):
        try:
            rec = orjson.loads(line)
        except orjson.JSONDecodeError:
            bad.append(lineno)
            continue
        last[rec.get("id", lineno) if isinstance(rec, dict) else lineno] = lineno
    keep = set(last.values()) | set(bad)
    with atomic_output(output, lock=False) as tmp, open(tmp, "wb") as f:
        for lineno, line in _lines(output):
            if lineno in keep:
                f.write(line if line.endswith(b"\n") else line + b"\n")
    if bad:
        where = ", ".join(f"{output}:{n}" for n in bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        log.warning("%s: kept %d line(s) that do not parse while compacting (%s); fix or delete them", output,
                    len(bad), where)


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number, line) of the non-blank lines."""
    with open(path, "rb") as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                yield lineno, line


def run_judges(
    traces: Path | str | list[Path] | list[str],
    judges: list[str],
    segments: list[str],
    output: Path | str,
    judge_model: str | dict[str, str] | None = None,
    backend: str | None = None,
    batch_size: int | None = None,
    progress: bool = True,
    *,
    cache_dir: Path | str | None = "auto",
    retry_errors: bool = False,
    on_bad_line: str = "error",
    reasoning_format: str | None = None,
    **judge_options: Any,
) -> dict[str, Any]:
    """Judge every trace x segment with every judge, appending Verdicts to ``output``.

    Resumable and cached (see the module doc). ``judge_options``: options for the judges (each goes to
    the judges that accept it; ``NAME={...}`` for one judge). Returns counts: traces, empty segments,
    judge_calls, cached, already_done, verdicts, ok, error, unsafe, safe, refused, and ``per_judge``.
    Raises ``BadLineError`` (FILE:LINE) on a malformed trace line, ValueError on a bad option.
    ``reasoning_format``: how traces that were never split are split (default: detected per trace).
    """
    if reasoning_format not in (None, "auto"):
        from ..formats import get

        get(reasoning_format)  # an unknown name fails before any work
    paths = [Path(traces)] if isinstance(traces, (str, Path)) else [Path(p) for p in traces]
    for p in paths:
        if not p.exists():
            raise FileNotFoundError(f"{p}: no such file")
    bad = [s for s in segments if s not in SEGMENTS]
    if bad or not segments:
        raise ValueError(f"segments must be among {', '.join(SEGMENTS)}; got {segments}")
    if not judges:
        raise ValueError("no judges given")
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    if cache_dir == "auto":
        cache_dir = output.parent / ".judge-cache"
    cache_path = Path(cache_dir) if cache_dir else None
    totals: Counter = Counter()
    per_judge: dict[str, dict[str, int]] = {}
    compact = False
    # The output is locked and checked against the inputs before a judge model loads.
    with JsonlWriter(output, inputs=paths) as writer:
        judge_objs = build_judges(list(judges), judge_model, backend, **judge_options)
        n_traces = sum(1 for _ in iter_traces(paths, on_bad_line))  # validates every line before any judging
        for judge in judge_objs:
            jp = _Pass(judge, output, cache_path, batch_size or getattr(judge, "default_batch_size", 32), retry_errors)
            bar = _progress(progress, f"judge {judge.name}", n_traces * len(segments))
            try:
                pending: list = []

                def flush():
                    if not pending:
                        return
                    verdicts = jp.run_batch(pending)
                    writer.write_batch(verdicts)
                    if jp.cache_writer is not None:
                        recs = [_cache_record(p[4], v) for p, v in zip(pending, verdicts)]
                        jp.cache_writer.write_batch(recs)
                        jp.cache.update((r["key"], r) for r in recs)
                    for v in verdicts:
                        jp.counts["judged"] += 1
                        jp._count(v.to_dict())
                    bar(len(pending))
                    pending.clear()

                for rec in iter_traces(paths, on_bad_line):
                    texts = segment_texts(rec, reasoning_format)
                    if rec.get("prompt") is None:
                        jp.counts["no_prompt"] += 1
                    for segment in segments:
                        text = texts[segment]
                        if not text.strip():
                            jp.counts["empty"] += 1
                            bar(1)
                            continue
                        planned = jp.plan(rec, segment, text)
                        if planned is None:
                            bar(1)
                            continue
                        vid, key, cached = planned
                        if cached is not None:
                            writer.write(cached)
                            jp._count(cached.to_dict())
                            bar(1)
                            continue
                        pending.append((rec, segment, text, vid, key))
                        if len(pending) >= jp.batch_size:
                            flush()
                flush()
            finally:
                bar(None)
                jp.close()
            compact |= jp.superseded
            per_judge[judge.name] = dict(jp.counts)
            totals.update(jp.counts)
        if compact:
            _compact(output)  # under the writer's lock: no other process appends meanwhile
    _release_models()
    stats: dict[str, Any] = {"traces": n_traces}
    for k in ("verdicts", "ok", "error", "unsafe", "safe", "refused", "empty", "judge_calls", "judged", "cached",
              "already_done", "no_prompt"):  # fmt: skip
        stats[k] = totals.get(k, 0)
    stats["per_judge"] = per_judge
    return stats


def _release_models() -> None:
    mod = sys.modules.get("tracesafe.judges._models")
    if mod is not None:
        mod.release_all()


def _progress(enabled: bool, description: str, total: int):
    """advance(n) callback for a rich bar on stderr; advance(None) closes it. No-op off a terminal."""
    if not enabled or not sys.stderr.isatty():
        return lambda n: None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    prog = Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn(), console=Console(stderr=True), transient=True)  # fmt: skip
    task = prog.add_task(description, total=total)
    prog.start()

    def advance(n):
        if n is None:
            prog.stop()
        else:
            prog.advance(task, n)

    return advance
