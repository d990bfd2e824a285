"""The judge stage: traces.jsonl -> verdicts.jsonl, one Verdict per trace x segment x judge.

Resumable and cached (ids, keys and the cache: ``_cache``): a finished pass makes zero judge calls and an
interrupted one continues where it stopped (the output is append-only JSONL; a torn last line is cut off on
reopen). Errors are verdicts (status=error, raw output kept) and are reused like any other unless
``retry_errors`` is set. Empty segments (no thinking) get no verdict and are counted as ``empty``.
"""

from __future__ import annotations

import contextlib

import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from .._util.progress import progress as progress_bar
from ..engines.registry import EnginePool
from ..records import Trace, Verdict, check_trace_use
from ..split import never_split, split_of
from ..store import BadLineError, JsonlWriter, SeenIds, read_jsonl_numbered
from ._base import JudgeItem, JudgeResult
from ._batch import build_judges, check_judges, judge_texts
from ._cache import ResultCache, cache_key, compact, resume_index, verdict_id

SEGMENTS = ("thinking", "answer", "full")


def check_segments(segments: list[str]) -> None:
    """ValueError unless ``segments`` names at least one segment, each of ``SEGMENTS``."""
    if not segments or any(s not in SEGMENTS for s in segments):
        raise ValueError(f"segments must be among {', '.join(SEGMENTS)}; got {segments}")
log = logging.getLogger(__name__)
FULL_SEP = "\n\n"  # "full" = thinking + FULL_SEP + answer (either alone when the other is empty)


def segment_texts(rec: dict[str, Any], reasoning_format: str | None = None) -> dict[str, str]:
    """thinking / answer / full of a trace; a trace that was never split is split on the fly (by
    ``reasoning_format``, default: detected)."""
    thinking, answer = rec.get("thinking"), rec.get("answer")
    if never_split(rec):
        s = split_of(rec, reasoning_format)
        thinking, answer = s.thinking, s.answer
    thinking, answer = thinking or "", answer or ""
    full = FULL_SEP.join(t for t in (thinking, answer) if t)
    return {"thinking": thinking, "answer": answer, "full": full}


def _check_trace(rec: dict[str, Any]) -> None:
    Trace.check(rec)
    check_trace_use(rec)
    if all(rec.get(k) is None for k in ("raw", "thinking", "answer")):
        raise ValueError("trace has none of 'raw', 'thinking', 'answer'")


def iter_traces(paths: list[Path], on_bad_line: str = "error", warn: bool = True) -> Iterator[dict[str, Any]]:
    """Trace dicts from JSONL files; a line that is not a usable trace raises ``FILE:LINE: reason``. A trace
    read twice (the same file given twice) is judged once; another trace under an id already read is bad input,
    not a duplicate: it would go unjudged."""
    seen = SeenIds()
    for path in paths:
        where = str(path)
        for lineno, rec in read_jsonl_numbered(path, on_bad_line=on_bad_line, warn=warn, check=_check_trace):
            try:
                new = seen.add(rec, where, lineno)
            except BadLineError as e:
                if on_bad_line == "error":
                    raise
                if warn:
                    log.warning("skipped %s", e)
                continue
            if new:
                yield rec


class Pending(NamedTuple):
    """A segment waiting for its batch."""

    trace: dict[str, Any]
    segment: str
    text: str
    id: str
    key: str


class _Pass:
    """One judge over all traces: skips what the output or the cache holds, batches the rest, writes, counts."""

    def __init__(self, judge, writer: JsonlWriter, existing: dict[str, tuple[str, dict[str, Any]]], cache_dir: Path | None,
                 batch_size: int, retry_errors: bool):  # fmt: skip
        self.judge = judge
        self.name = judge.name
        self.config = judge.config()
        self.writer = writer
        self.batch_size = max(1, batch_size)
        self.retry_errors = retry_errors
        self.counts: Counter = Counter()
        self.existing = existing  # id -> (key, verdict) of this judge's verdicts already in the output
        self.cache = ResultCache(cache_dir, self.name)
        self.pending: list[Pending] = []
        self.superseded = False

    def _reusable(self, status: str | None) -> bool:
        return status == "ok" or not self.retry_errors

    def add(self, rec: dict[str, Any], segment: str, text: str) -> int:
        """Judge (or reuse) one non-empty segment; returns how many segments are now done (a batch may flush)."""
        vid = verdict_id(rec["id"], segment, self.name)
        key = cache_key(self.name, self.judge.version, self.config, rec.get("prompt"), text)
        old = self.existing.get(vid)
        if old is not None:
            if old[0] == key and self._reusable(old[1].get("status")):
                self.counts["already_done"] += 1
                self._count(old[1].get("status"), old[1].get("unsafe"), old[1].get("refused"))
                return 1
            self.superseded = True
        hit = self.cache.get(key)
        if hit is not None and self._reusable(hit.status):
            self.counts["cached"] += 1
            v = self._verdict(Pending(rec, segment, text, vid, key), hit)
            self.writer.write(v)
            self._count(v.status, v.unsafe, v.refused)
            return 1
        self.pending.append(Pending(rec, segment, text, vid, key))
        return self.flush() if len(self.pending) >= self.batch_size else 0

    def flush(self) -> int:
        """Judge the pending segments in one call; returns how many."""
        if not self.pending:
            return 0
        items = [JudgeItem(text=p.text, prompt=p.trace.get("prompt"), segment=p.segment) for p in self.pending]
        judged = judge_texts(self.judge, items)
        self.counts["judge_calls"] += judged.calls
        verdicts = [self._verdict(p, r) for p, r in zip(self.pending, judged.results)]
        self.writer.write_batch(verdicts)
        self.cache.add(verdicts)
        for v in verdicts:
            self.counts["judged"] += 1
            self._count(v.status, v.unsafe, v.refused)
        n, self.pending = len(self.pending), []
        return n

    def _verdict(self, p: Pending, r: JudgeResult) -> Verdict:
        extra = dict(r.extra)
        spans = extra.pop("spans", [])
        ok = r.status == "ok"
        return Verdict(
            trace_id=p.trace["id"], segment=p.segment, judge=self.name, judge_version=self.judge.version,  # type: ignore[arg-type]
            status=r.status, unsafe=r.unsafe if ok else None, score=r.score if ok else None, categories=r.categories,
            refused=r.refused if ok else None, spans=spans, raw_output=r.raw_output, error=r.error, id=p.id, key=p.key,
            harmfulness=r.harmfulness, judge_config=self.config, grade=self.judge.grade, kind=self.judge.kind,
            extra=extra,
        )  # fmt: skip

    def _count(self, status: str | None, unsafe: Any, refused: Any) -> None:
        self.counts["verdicts"] += 1
        self.counts[status or "error"] += 1
        if status == "ok":
            if unsafe is True:
                self.counts["unsafe"] += 1
            elif unsafe is False:
                self.counts["safe"] += 1
            if refused is True:
                self.counts["refused"] += 1

    def close(self) -> None:
        self.cache.close()
        self.judge.close()


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
    ``reasoning_format``: how traces that were never split are split (default: detected per trace); traces split
    by another format keep their split (a warning counts them).
    """
    if reasoning_format not in (None, "auto"):
        from ..formats import get

        get(reasoning_format)  # an unknown name fails before any work
    paths = [Path(traces)] if isinstance(traces, (str, Path)) else [Path(p) for p in traces]
    for p in paths:
        if not p.exists():
            raise FileNotFoundError(f"{p}: no such file")
    check_segments(segments)
    check_judges(judges)
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch size must be >= 1, not {batch_size}")
    # a name given twice is asked once: each (trace, segment, judge) has one verdict
    segments, judges = list(dict.fromkeys(segments)), list(dict.fromkeys(judges))
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    if cache_dir == "auto":
        cache_dir = output.parent / ".judge-cache"
    cache_path = Path(cache_dir) if cache_dir else None
    totals: Counter = Counter()
    per_judge: dict[str, dict[str, int]] = {}
    superseded = False
    # Judges are built (their options checked) before the output is touched, and the output is locked and checked
    # against the inputs before a judge model loads. Engines open on a judge's first call (a finished pass loads
    # none); judges on one model share one; all close at the end.
    with contextlib.ExitStack() as stack:
        engines = stack.enter_context(EnginePool())
        judge_objs = build_judges(list(judges), judge_model, backend, engines, **judge_options)
        writer = stack.enter_context(JsonlWriter(output, inputs=paths))
        n_traces = resplit = 0
        for rec in iter_traces(paths, on_bad_line):  # validates every line before any judging
            n_traces += 1
            # Thinking from an API field reads the same under any format; a trace without raw cannot be re-split.
            resplit += (reasoning_format not in (None, "auto") and not never_split(rec) and isinstance(rec.get("raw"), str)
                        and rec.get("split_rule") != "api_field" and rec.get("split_format") != reasoning_format)  # fmt: skip
        if resplit:  # judging them re-split would put other texts under verdicts a resume keeps
            log.warning("--format %s applies to traces never split; %d trace(s) split otherwise are judged as they were "
                        "split (`tracesafe split --format %s` re-splits them)", reasoning_format, resplit, reasoning_format)  # fmt: skip
        existing = resume_index(writer.path, [j.name for j in judge_objs])
        for judge in judge_objs:
            jp = _Pass(judge, writer, existing.pop(judge.name), cache_path, batch_size or getattr(judge, "default_batch_size", 32),
                       retry_errors)  # fmt: skip
            try:
                with progress_bar(f"judge {judge.name}", n_traces * len(segments), enabled=progress) as bar:
                    for rec in iter_traces(paths, on_bad_line, warn=False):  # the first pass warned
                        texts = segment_texts(rec, reasoning_format)
                        if rec.get("prompt") is None:
                            jp.counts["no_prompt"] += 1
                        for segment in segments:
                            text = texts[segment]
                            if not text.strip():
                                jp.counts["empty"] += 1
                                bar(1)
                            else:
                                bar(jp.add(rec, segment, text))
                    bar(jp.flush())
            finally:
                jp.close()
            superseded |= jp.superseded
            per_judge[judge.name] = dict(jp.counts)
            totals.update(jp.counts)
        if superseded:
            compact(output)  # under the writer's lock: no other process appends meanwhile
    stats: dict[str, Any] = {"traces": n_traces}
    for k in ("verdicts", "ok", "error", "unsafe", "safe", "refused", "empty", "judge_calls", "judged", "cached",
              "already_done", "no_prompt"):  # fmt: skip
        stats[k] = totals.get(k, 0)
    stats["per_judge"] = per_judge
    return stats
