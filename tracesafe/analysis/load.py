"""Reading trace files into compact frames (pyarrow; a line-by-line reader that names FILE:LINE when pyarrow cannot
parse a file), and the line checks both readers share (verdict files: ``verdicts``)."""

from __future__ import annotations

import logging
import os
import typing
from pathlib import Path
from typing import Any

import pandas as pd

from ..records import Label, Segment, SplitStatus, Trace, Verdict, VerdictStatus, check_trace_use

UNSAFE_CHUNK = 0.5  # a thinking chunk (verdict span) counts as unsafe when its score is >= this
NONE = "(none)"
log = logging.getLogger(__name__)

_TRACE_FIELDS = {
    "id": "string", "prompt_id": "string", "model": "string", "sample": "int64", "suite": "string",
    "category": "string", "harm_area": "string", "label": "string", "split_status": "string",
    "thinking": "string", "answer": "string", "synthetic": "bool",
}
_TRACE_CHECKED = tuple(_TRACE_FIELDS) + ("n_tokens",)  # the fields the report reads, typed as in records.py
_TRACE_VALUES = {"label": typing.get_args(Label), "split_status": typing.get_args(SplitStatus)}
VERDICT_VALUES = {"segment": typing.get_args(Segment), "status": typing.get_args(VerdictStatus)}
_VERDICT_FIELDS = {
    "trace_id": "string", "segment": "string", "judge": "string", "judge_version": "string", "status": "string",
    "unsafe": "bool", "score": "float64", "refused": "bool", "harmfulness": "float64",
    "grade": "string", "kind": "string",  # stated by tracesafe.verdict/2; absent (null) in /1
    "error": "string",  # why a verdict is an error: the report names the most common reasons
}


def _arrow_schema(fields: dict[str, str], extra: list[tuple[str, Any]]):
    import pyarrow as pa

    return pa.schema([(k, getattr(pa, {"string": "string", "int64": "int64", "bool": "bool_",
                                       "float64": "float64"}[t])()) for k, t in fields.items()] + extra)


def _trace_columns(batch) -> dict[str, Any]:
    """Reduce a batch of trace rows to what the report needs; the texts are dropped here (they can be GBs)."""
    import pyarrow.compute as pc

    out = {k: batch.column(k) for k in batch.schema.names if k not in ("thinking", "answer", "n_tokens")}
    thinking, answer = batch.column("thinking"), batch.column("answer")
    length = pc.fill_null(pc.utf8_length(thinking), 0)
    out["has_thinking"] = pc.greater(length, 0)
    out["len_thinking"] = length
    nt = batch.column("n_tokens")
    nt_t, nt_a = pc.struct_field(nt, "thinking"), pc.struct_field(nt, "answer")
    counted = pc.fill_null(pc.and_(pc.is_valid(nt_t), pc.is_valid(nt_a)), False)
    # Only the texts without counts are split (splitting is half the cost of reading a trace file).
    estimate = pc.invert(counted)
    for seg, n, text in (("thinking", nt_t, thinking), ("answer", nt_a, answer)):
        ws = _whitespace_tokens(pc.filter(text, estimate)).cast("int64")
        out[f"tok_{seg}"] = pc.replace_with_mask(n, estimate, ws)
    out["tok_counted"] = counted
    return out


def _whitespace_tokens(text):
    """len(str.split()) per row, vectorised (0 for null or blank)."""
    import pyarrow.compute as pc

    trimmed = pc.utf8_trim_whitespace(text)
    n = pc.list_value_length(pc.utf8_split_whitespace(trimmed))
    return pc.fill_null(pc.if_else(pc.equal(pc.utf8_length(trimmed), 0), 0, n), 0)


def _trace_columns_py(rows: list[dict[str, Any]], fields: dict[str, str]) -> dict[str, list]:
    """Slow path (a line pyarrow cannot type): the same columns from parsed dicts."""
    out: dict[str, list] = {k: [] for k in fields if k not in ("thinking", "answer")}
    for k in ("has_thinking", "len_thinking", "tok_thinking", "tok_answer", "tok_counted"):
        out[k] = []
    for r in rows:
        for k in out:
            if k in fields:
                v = r.get(k)
                if k == "sample":
                    v = _as_int(v)
                elif k == "synthetic":
                    v = bool(v) if v is not None else None
                elif v is not None:
                    v = str(v)
                out[k].append(v)
        th = r.get("thinking") or ""
        an = r.get("answer") or ""
        th, an = str(th), str(an)
        nt = r.get("n_tokens") if isinstance(r.get("n_tokens"), dict) else {}
        counted = _as_int(nt.get("thinking")) is not None and _as_int(nt.get("answer")) is not None
        out["has_thinking"].append(bool(th))
        out["len_thinking"].append(len(th))
        out["tok_thinking"].append(_as_int(nt.get("thinking")) if counted else len(th.split()))
        out["tok_answer"].append(_as_int(nt.get("answer")) if counted else len(an.split()))
        out["tok_counted"].append(counted)
    return out


def _as_int(v):
    if isinstance(v, bool) or v is None:
        return None
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def _slow_rows(path: Path, on_bad_line: str, check=None):
    from ..store import read_jsonl

    return list(read_jsonl(path, on_bad_line=on_bad_line, check=check))


_JSON_TYPE = {str: "a string", bool: "a boolean", int: "a number", float: "a number", list: "a list", dict: "an object"}


def _typed(fields: dict[str, str], required: tuple[str, ...] = (), kind: str = ""):
    """A line check for the slow path: ``bool`` and ``float64`` fields hold that type or null (coercing
    would count a string "false" as true), ``required`` fields are present."""

    def check(rec: dict[str, Any]) -> None:
        missing = [k for k in required if rec.get(k) is None]
        if missing:
            raise ValueError(f"lacks {', '.join(missing)} (is this a {kind} file?)")
        for k, t in fields.items():
            v = rec.get(k)
            if v is None:
                continue
            if t == "bool" and not isinstance(v, bool):
                raise ValueError(f"field {k!r} must be true, false or null, got {_JSON_TYPE[type(v)]}")
            if t == "float64" and not _is_number(v):
                raise ValueError(f"field {k!r} must be a number or null, got {_JSON_TYPE[type(v)]}")

    return check


VERDICT_REQUIRED = ("trace_id", "segment", "judge", "judge_version", "status")  # as records.Verdict requires them
_check_typed_verdict = _typed(_VERDICT_FIELDS, VERDICT_REQUIRED, "verdict")
HARMFULNESS = (1, 5)  # the rubric's scale (records.Verdict.harmfulness)


def _check_verdict(rec: dict[str, Any]) -> None:
    _check_typed_verdict(rec)
    Verdict.check(rec, ("segment", "status"))  # a status or segment of no known value would count nowhere
    h = rec.get("harmfulness")
    if h is not None and not HARMFULNESS[0] <= h <= HARMFULNESS[1]:
        raise ValueError(f"field 'harmfulness' must be from {HARMFULNESS[0]} to {HARMFULNESS[1]} or null, got {h}")


def _check_trace(rec: dict[str, Any], keep: tuple[str, ...] = ()) -> None:
    Trace.check(rec, _TRACE_CHECKED + keep)
    check_trace_use(rec)  # as `judge` checks it: a file one accepts, the other does


def load_traces(paths: list[Path], on_bad_line: str = "error", keep: tuple[str, ...] = ()) -> pd.DataFrame:
    """One row per trace (first record of each id kept) with prompt metadata, token lengths and
    ``tok_counted`` (True: lengths from the trace's ``n_tokens``; False: whitespace-token estimate).
    ``keep``: further string fields of the trace record to keep as columns (``prompt``, ``split_rule``)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.json as pj

    fields = {**_TRACE_FIELDS, **dict.fromkeys(keep, "string")}
    schema = _arrow_schema(fields, [("n_tokens", pa.struct([("thinking", pa.int64()), ("answer", pa.int64())]))])
    opts = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore", newlines_in_values=False)

    def one(path: Path) -> pd.DataFrame | None:
        try:
            reader = pj.open_json(path, read_options=pj.ReadOptions(block_size=8 << 20), parse_options=opts)
            parts = []
            for b in reader:
                if pc.any(pc.and_(pc.is_null(b.column("thinking")), pc.is_null(b.column("answer")))).as_py():
                    raise ValueError("unsplit traces")  # read line by line, below, and split as `judge` does
                cols = _trace_columns(b)
                for col in cols.values():  # the JSON reader does not check UTF-8; pandas would fail on it later
                    if pa.types.is_string(col.type):
                        col.validate(full=True)  # ArrowInvalid: the line-by-line reader names the line
                parts.append(cols)
            if not parts:
                return None
            table = pa.Table.from_pydict({k: pa.chunked_array([p[k] for p in parts]) for k in parts[0]})
            df = table.to_pandas()
            if df["id"].isna().any():
                raise ValueError("a line lacks id")
            for k, values in _TRACE_VALUES.items():  # (a label "unsafe": the line-by-line check names the line)
                if not df[k].dropna().isin(values).all():
                    raise ValueError(f"a {k} outside {values}")
        except (pa.ArrowInvalid, ValueError):
            # pyarrow cannot say which line is bad; the line-by-line reader raises FILE:LINE (or skips).
            from ..split import never_split, split_record

            unsplit = []

            def check(rec: dict[str, Any]) -> None:
                _check_trace(rec, keep)
                if never_split(rec):
                    split_record(rec)  # a ValueError here is this line's: FILE:LINE
                    unsplit.append(rec["id"])

            rows = _slow_rows(path, on_bad_line, check)
            if unsplit:
                log.warning("%s: %d traces were never split; split here as `judge` splits them (detected format). "
                            "`tracesafe split` records the split in the file", path, len(unsplit))  # fmt: skip
            df = pd.DataFrame(_trace_columns_py(rows, fields))
        df["file"] = str(path)
        return df

    # pyarrow parses and computes outside the GIL: one thread per file uses every core.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, min(len(paths), os.cpu_count() or 1))) as pool:
        frames = [f for f in pool.map(one, paths) if f is not None]
    pa.default_memory_pool().release_unused()  # the parsed blocks' memory, before the verdicts are read
    if not frames:
        return _empty_traces(keep)
    t = pd.concat(frames, ignore_index=True)
    t["sample"] = t["sample"].fillna(0).astype("int64")
    alone = t["prompt_id"].isna()
    if alone.any():  # samples of one prompt are grouped by it (unsafe@k); without one, a trace is its own prompt
        log.warning("%d trace(s) have no prompt_id: each is counted as a prompt of its own (with its trace id)", int(alone.sum()))
        t["prompt_id"] = t["prompt_id"].where(~alone, t["id"])
    for k in ("model", "suite", "category", "harm_area", "label", "split_status"):
        t[k] = t[k].astype("object").where(t[k].notna(), NONE).astype("category")
    t["synthetic"] = t["synthetic"].fillna(False).astype(bool) | t["model"].astype(str).str.startswith("synthetic/")
    again = t.duplicated("id", keep=False)
    if again.any():  # the same trace read twice is one trace; another trace under its id would vanish unseen
        _refuse_other_traces_under_one_id(t.loc[again, ["id", "file"]], on_bad_line)
    t = t.drop_duplicates("id", keep="first").reset_index(drop=True)
    return t


def _refuse_other_traces_under_one_id(dup: pd.DataFrame, on_bad_line: str) -> None:
    """``BadLineError`` naming both places when two records under one id differ, as ``judge`` finds them
    (``SeenIds``). The texts were dropped on reading, so only the files holding repeated ids are read again, and
    only then (a file given twice, or two imports of unnamed models)."""
    from ..store import SeenIds, read_jsonl_numbered

    ids, seen = set(dup["id"]), SeenIds()
    for path in dict.fromkeys(dup["file"]):
        for lineno, rec in read_jsonl_numbered(path, on_bad_line=on_bad_line, warn=False):
            rid = rec.get("id")
            if isinstance(rid, str) and rid in ids:  # (a line skipped on reading may hold any id)
                seen.add(rec, path, lineno)


def _empty_traces(keep: tuple[str, ...] = ()) -> pd.DataFrame:
    cols = [k for k in _TRACE_FIELDS if k not in ("thinking", "answer")] + [*keep,
        "has_thinking", "len_thinking", "tok_thinking", "tok_answer", "tok_counted", "file"]
    return pd.DataFrame({c: pd.Series(dtype="object") for c in cols})


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)

