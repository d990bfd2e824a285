"""What lets a judge pass skip work: the resume index (verdicts already in the output), the content-addressed
cache shared by runs, and the compaction that drops superseded verdicts.

- A verdict's ``id`` is (trace, segment, judge); its ``key`` the sha256 of (judge name, version, config,
  prompt, segment text). The output holds at most one current verdict per id: a rerun skips an id whose
  verdict has the same key, and a re-judged one is appended and the old line compacted away.
- ``<cache_dir>/<judge>.jsonl`` maps a key to a result, so the same (judge, config, prompt, text) is answered
  from any trace or run without a call. The file is appended under a per-write lock (several runs share it).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from .._util.provenance import sha256_text, stable_id
from ..records import Verdict
from ..store import JsonlWriter, atomic_output, read_jsonl
from ._base import JudgeResult

log = logging.getLogger(__name__)
# JudgeResult fields a cache record holds; its other fields (spans, chunks, usage, ...) become the extra.
_RESULT_FIELDS = ("status", "unsafe", "score", "categories", "refused", "harmfulness", "raw_output", "error")


def verdict_id(trace_id: str, segment: str, judge: str) -> str:
    return stable_id("verdict", trace_id, segment, judge)


def cache_key(judge: str, version: str, config: dict[str, Any], prompt: str | None, text: str) -> str:
    return stable_id(judge, version, config, sha256_text(prompt), sha256_text(text), n=None)


def resume_index(output: Path, judges: list[str]) -> dict[str, dict[str, tuple[str, dict[str, Any]]]]:
    """judge -> id -> (key, verdict) of the verdicts already in ``output`` (the last line of an id wins), read
    once for every judge of the run: a line that does not parse (not done) is named in one warning."""
    index: dict[str, dict[str, tuple[str, dict[str, Any]]]] = {j: {} for j in judges}
    if output.exists():
        for v in read_jsonl(output, on_bad_line="skip", warn="complete"):
            if v.get("judge") in index and "id" in v:
                index[v["judge"]][v["id"]] = (v.get("key") or "", v)
    return index


class ResultCache:
    """Results by key, read from ``<cache_dir>/<judge>.jsonl`` and appended as a pass judges."""

    def __init__(self, cache_dir: Path | None, judge: str):
        self.results: dict[str, dict[str, Any]] = {}
        self.writer = None
        if cache_dir is None:
            return
        path = cache_dir / f"{judge}.jsonl"
        if path.exists():
            for c in read_jsonl(path, on_bad_line="skip", warn="complete"):
                if "key" in c:
                    self.results[c["key"]] = c
        self.writer = JsonlWriter(path, lock="per_write")  # shared by runs judging other files

    def get(self, key: str) -> JudgeResult | None:
        c = self.results.get(key)
        if c is None:
            return None
        extra = {k: v for k, v in c.items() if k not in _RESULT_FIELDS and k != "key"}
        return JudgeResult(**{k: c[k] for k in _RESULT_FIELDS if k in c}, extra=extra)

    def add(self, verdicts: list[Verdict]) -> None:
        if self.writer is None:
            return
        recs = [_cache_record(v) for v in verdicts]
        self.writer.write_batch(recs)
        self.results.update((r["key"], r) for r in recs)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _cache_record(v: Verdict) -> dict[str, Any]:
    """The result part of a verdict: what the same judge would answer for the same key anywhere."""
    d = {"key": v.key, "status": v.status, "unsafe": v.unsafe, "score": v.score, "categories": v.categories,
         "refused": v.refused, "harmfulness": v.harmfulness, "raw_output": v.raw_output, "error": v.error,
         "spans": v.spans}  # fmt: skip
    d.update(v.extra)
    return d


def compact(output: Path) -> None:
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
