"""Reading trace and verdict files into compact frames (pyarrow; a line-by-line reader that names FILE:LINE
when pyarrow cannot parse a file)."""

from __future__ import annotations

import logging
import os
import typing
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..records import Label, SplitStatus, Trace

# The judge options that move a verdict's decision threshold (offline's threshold, rubric's unsafe_threshold): the
# report reads them from each verdict's judge_config so that a judge card measured at another threshold is not used.
THRESHOLD_KEYS = ("threshold", "unsafe_threshold")
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
_VERDICT_FIELDS = {
    "trace_id": "string", "segment": "string", "judge": "string", "judge_version": "string", "status": "string",
    "unsafe": "bool", "score": "float64", "refused": "bool", "harmfulness": "float64",
    "grade": "string", "kind": "string",  # stated by tracesafe.verdict/2; absent (null) in /1
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


_check_verdict = _typed(_VERDICT_FIELDS, ("trace_id", "segment", "judge", "status"), "verdict")


_check_trace_flags = _typed({k: t for k, t in _TRACE_FIELDS.items() if t == "bool"})  # `synthetic` is no Trace field


def _check_trace(rec: dict[str, Any], keep: tuple[str, ...] = ()) -> None:
    Trace.check(rec, _TRACE_CHECKED + keep)
    _check_trace_flags(rec)
    if rec.get("id") is None:
        raise ValueError("trace has no 'id' (is this a trace file?)")
    if rec.get("prompt_id") is None:  # samples of one prompt are grouped by it (unsafe@k)
        raise ValueError("trace has no 'prompt_id'")


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
                parts.append(_trace_columns(b))
            if not parts:
                return None
            table = pa.Table.from_pydict({k: pa.chunked_array([p[k] for p in parts]) for k in parts[0]})
            df = table.to_pandas()
            if df["id"].isna().any() or df["prompt_id"].isna().any():
                raise ValueError("a line lacks id or prompt_id")
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
    for k in ("model", "suite", "category", "harm_area", "label", "split_status"):
        t[k] = t[k].astype("object").where(t[k].notna(), NONE).astype("category")
    t["synthetic"] = t["synthetic"].fillna(False).astype(bool) | t["model"].astype(str).str.startswith("synthetic/")
    t = t.drop_duplicates("id", keep="first").reset_index(drop=True)
    return t


def _empty_traces(keep: tuple[str, ...] = ()) -> pd.DataFrame:
    cols = [k for k in _TRACE_FIELDS if k not in ("thinking", "answer")] + [*keep,
        "has_thinking", "len_thinking", "tok_thinking", "tok_answer", "tok_counted", "file"]
    return pd.DataFrame({c: pd.Series(dtype="object") for c in cols})


def _onset_chars(spans) -> np.ndarray:
    """Start (chars) of the first chunk with score >= UNSAFE_CHUNK per row of a list<list<double>> column;
    NaN when no chunk is unsafe. Malformed chunks (fewer than 3 numbers) are ignored."""
    import pyarrow as pa
    import pyarrow.compute as pc

    spans = spans.combine_chunks() if isinstance(spans, pa.ChunkedArray) else spans
    n = len(spans)
    onset = np.full(n, np.inf)
    if n == 0:
        return onset
    parent = pc.list_parent_indices(spans).to_numpy(zero_copy_only=False)
    chunks = pc.list_flatten(spans)
    if len(chunks) == 0:
        return np.where(np.isinf(onset), np.nan, onset)
    good = pc.fill_null(pc.greater_equal(pc.list_value_length(chunks), 3), False)
    chunks = chunks.filter(good)
    parent = parent[good.to_numpy(zero_copy_only=False)]
    start = pc.list_element(chunks, 0).to_numpy(zero_copy_only=False).astype(float)
    score = pc.list_element(chunks, 2).to_numpy(zero_copy_only=False).astype(float)
    hit = score >= UNSAFE_CHUNK
    np.minimum.at(onset, parent[hit], start[hit])
    return np.where(np.isinf(onset), np.nan, onset)


def load_verdicts(path: Path, on_bad_line: str = "error", trace_ids: pd.Index | None = None) -> pd.DataFrame:
    """One row per verdict with ``onset_char`` (first unsafe span start, thinking chunks) and ``n_spans``.

    The file is read block by block and each block reduced to compact columns (categories, nullable booleans),
    so memory grows with the verdict count, not the file size. With ``trace_ids`` (the traces' ids),
    ``trace_id`` comes back as an int32 code: the position in ``trace_ids``, or a code past its end (one per
    distinct unknown id) for a verdict whose trace is not there; ids are then never held as Python strings."""
    import pyarrow as pa
    import pyarrow.json as pj

    config = pa.struct([(k, pa.float64()) for k in THRESHOLD_KEYS])  # a config's other keys are ignored
    schema = _arrow_schema(_VERDICT_FIELDS, [("spans", pa.list_(pa.list_(pa.float64()))), ("judge_config", config)])
    opts = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore", newlines_in_values=False)
    unknown: dict[str, int] = {}
    thresholds: set[tuple] = set()
    try:
        reader = pj.open_json(path, read_options=pj.ReadOptions(block_size=8 << 20), parse_options=opts)
        values: dict[str, dict[str, int]] = {k: {} for k in _CATEGORIES}  # value -> code, across blocks
        parts = [_verdict_block(b, trace_ids, unknown, values, thresholds) for b in reader]
        if not parts:
            parts = [_verdict_block(pa.RecordBatch.from_pylist([], schema=schema), trace_ids, unknown, values, thresholds)]
        # The reader's buffers go back before the columns are joined; each column's blocks are freed as it is.
        pa.default_memory_pool().release_unused()
        df = pd.DataFrame({k: _join_column(parts, k, values) for k in list(parts[0])})
    except (pa.ArrowInvalid, ValueError):
        unknown.clear()
        rows = _slow_rows(path, on_bad_line, _check_verdict)
        thresholds = {(str(r["judge"]), *(_threshold(r.get("judge_config"), k) for k in THRESHOLD_KEYS)) for r in rows}
        df, onset, n_spans = _verdict_columns_py(rows)
        df["onset_char"] = onset
        df["n_spans"] = n_spans
        if trace_ids is not None:
            df["trace_id"] = _trace_codes(df["trace_id"].to_numpy(dtype=object), trace_ids, unknown)
        df["judge_version"] = df["judge_version"].fillna("")
        for k in _CATEGORIES:
            # Sorted categories, as the fast path gives: groupby order follows them.
            c = df[k].astype("category").cat.remove_unused_categories()
            df[k] = c.cat.reorder_categories(sorted(c.cat.categories))
    found: dict[str, dict[str, set]] = {}
    for judge, *vals in thresholds:
        for k, v in zip(THRESHOLD_KEYS, vals):
            found.setdefault(judge, {}).setdefault(k, set()).add(v)
    df.attrs["judge_thresholds"] = found
    return df


def _threshold(config: Any, key: str) -> float | None:
    v = config.get(key) if isinstance(config, dict) else None
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


_CATEGORIES = ("segment", "judge", "judge_version", "status", "grade", "kind")


def _verdict_block(batch, trace_ids: pd.Index | None, unknown: dict[str, int],
                   values: dict[str, dict[str, int]], thresholds: set[tuple]) -> dict[str, np.ndarray]:
    """A block of verdict rows as numpy columns: spans reduced to onset and count, strings as codes into
    ``values`` (shared by all blocks, so no block keeps an Arrow dictionary or a string per row), booleans as
    (value, missing) pairs, trace ids as codes when ``trace_ids`` is given. The distinct (judge, threshold
    options) of the block's ``judge_config`` go to ``thresholds``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for k in ("trace_id", "segment", "judge", "status"):
        if batch.column(k).null_count:
            raise ValueError(f"a line lacks {k}")
    ids = batch.column("trace_id").to_numpy(zero_copy_only=False)
    cols: dict[str, Any] = {"trace_id": ids if trace_ids is None else _trace_codes(ids, trace_ids, unknown)}
    for k, t in _VERDICT_FIELDS.items():
        col = batch.column(k)
        if k in ("trace_id", "score"):  # the score is checked, not used: not kept
            continue
        if t == "string":
            if k == "judge_version":
                col = pc.fill_null(col, "")
            enc = pc.dictionary_encode(col)
            known = values[k]
            lut = np.array([known.setdefault(x, len(known)) for x in enc.dictionary.to_pylist()] + [-1])
            lut = lut.astype(np.int16 if len(known) < 1 << 15 else np.int32)
            cols[k] = lut[pc.fill_null(enc.indices, -1).to_numpy(zero_copy_only=False)]
        elif t == "bool":
            cols[k] = (pc.fill_null(col, False).to_numpy(zero_copy_only=False),
                       pc.is_null(col).to_numpy(zero_copy_only=False))
        else:
            cols[k] = col.to_numpy(zero_copy_only=False).astype(np.float64)
    config = batch.column("judge_config")
    distinct = pa.table({"judge": batch.column("judge"), **{k: pc.struct_field(config, k) for k in THRESHOLD_KEYS}}
                        ).group_by(["judge", *THRESHOLD_KEYS]).aggregate([])  # fmt: skip
    thresholds.update(zip(*(distinct.column(k).to_pylist() for k in ["judge", *THRESHOLD_KEYS])))
    spans = batch.column("spans")
    cols["onset_char"] = _onset_chars(spans)
    cols["n_spans"] = pc.fill_null(pc.list_value_length(spans), 0).to_numpy(zero_copy_only=False).astype(np.int32)
    return cols


def _join_column(parts: list[dict[str, Any]], k: str, values: dict[str, dict[str, int]]):
    """Column ``k`` of all blocks as one pandas column, taken out of ``parts`` as it is joined."""
    blocks = [p.pop(k) for p in parts]
    if k in values:  # categories sorted, as astype("category") gives: groupby order follows them
        names = list(values[k])
        order = np.argsort(np.array(names, dtype=object)) if names else np.array([], int)
        rank = np.empty(len(names) + 1, np.int16 if len(names) < 1 << 15 else np.int32)
        rank[order] = np.arange(len(names))
        rank[-1] = -1  # missing
        codes = rank[np.concatenate(blocks)]
        return pd.Categorical.from_codes(codes, categories=pd.Index([names[i] for i in order]))
    if isinstance(blocks[0], tuple):
        return pd.arrays.BooleanArray(np.concatenate([b[0] for b in blocks]), np.concatenate([b[1] for b in blocks]))
    return np.concatenate(blocks)


def _trace_codes(ids: np.ndarray, trace_ids: pd.Index, unknown: dict[str, int]) -> np.ndarray:
    """Positions of ``ids`` in ``trace_ids``; an id not there gets ``len(trace_ids) + k``, the same k for the
    same id (``unknown`` carries them from block to block)."""
    codes = trace_ids.get_indexer(ids)
    missing = np.flatnonzero(codes < 0)
    for i in missing:
        codes[i] = len(trace_ids) + unknown.setdefault(ids[i], len(unknown))
    return codes.astype(np.int32)


def _verdict_columns_py(rows: list[dict[str, Any]]):
    """Columns of verdict rows that passed ``_check_verdict``."""
    cols: dict[str, list] = {k: [] for k in _VERDICT_FIELDS}
    onset, n_spans = [], []
    for r in rows:
        for k, t in _VERDICT_FIELDS.items():
            v = r.get(k)
            if v is not None and t != "bool":
                v = float(v) if t == "float64" else str(v)
            cols[k].append(v)
        spans = r.get("spans") or []
        starts = [float(s[0]) for s in spans
                  if isinstance(s, (list, tuple)) and len(s) >= 3 and _is_number(s[0]) and _is_number(s[2])
                  and float(s[2]) >= UNSAFE_CHUNK]
        onset.append(min(starts) if starts else np.nan)
        n_spans.append(len(spans) if isinstance(spans, list) else 0)
    df = pd.DataFrame(cols)
    for k in ("unsafe", "refused"):
        df[k] = df[k].astype("boolean")
    return df, np.asarray(onset, dtype=float), np.asarray(n_spans, dtype=np.int32)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)

