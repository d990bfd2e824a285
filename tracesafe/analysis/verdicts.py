"""Reading a verdict file into a compact frame (pyarrow block by block; the line-by-line reader of ``load`` names
FILE:LINE when pyarrow cannot parse it), with the judge options that moved each verdict's decision."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .load import (
    _VERDICT_FIELDS,
    HARMFULNESS,
    UNSAFE_CHUNK,
    VERDICT_REQUIRED,
    VERDICT_VALUES,
    _arrow_schema,
    _check_verdict,
    _is_number,
    _slow_rows,
)

# The judge options that move a verdict's decision threshold (offline's threshold, rubric's unsafe_threshold): the
# report reads them from each verdict's judge_config so that a judge card measured at another threshold is not used.
THRESHOLD_KEYS = ("threshold", "unsafe_threshold")
# The offline judge's second stage moves its decisions too: the hash of its weights, null when it was off, or
# UNKNOWN for a verdict that records no judge_config (a hand-made file: nothing to compare).
STAGE_KEY, UNKNOWN = "stage2", "?"
DECISION_KEYS = (*THRESHOLD_KEYS, STAGE_KEY)


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

    # A config's other keys are ignored.
    config = pa.struct([(k, pa.float64()) for k in THRESHOLD_KEYS] + [(STAGE_KEY, pa.struct([("sha256", pa.string())]))])
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
        thresholds = {(str(r["judge"]), *(_threshold(r.get("judge_config"), k) for k in THRESHOLD_KEYS), _stage(r.get("judge_config")))
                      for r in rows}  # fmt: skip
        df, onset, n_spans = _verdict_columns_py(rows)
        df["onset_char"] = onset
        df["n_spans"] = n_spans
        if trace_ids is not None:
            df["trace_id"] = _trace_codes(df["trace_id"].to_numpy(dtype=object), trace_ids, unknown)
        for k in _CATEGORIES:
            # Sorted categories, as the fast path gives: groupby order follows them.
            c = df[k].astype("category").cat.remove_unused_categories()
            df[k] = c.cat.reorder_categories(sorted(c.cat.categories))
    found: dict[str, dict[str, set]] = {}
    for judge, *vals in thresholds:
        for k, v in zip(DECISION_KEYS, vals):
            found.setdefault(judge, {}).setdefault(k, set()).add(v)
    df.attrs["judge_thresholds"] = found
    return df


def _threshold(config: Any, key: str) -> float | None:
    v = config.get(key) if isinstance(config, dict) else None
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _stage(config: Any) -> str | None:
    if not isinstance(config, dict):
        return UNKNOWN
    stage = config.get(STAGE_KEY)
    sha = stage.get("sha256") if isinstance(stage, dict) else None
    return sha if isinstance(sha, str) else None


_CATEGORIES = ("segment", "judge", "judge_version", "status", "grade", "kind", "error")


def _verdict_block(batch, trace_ids: pd.Index | None, unknown: dict[str, int],
                   values: dict[str, dict[str, int]], thresholds: set[tuple]) -> dict[str, np.ndarray]:
    """A block of verdict rows as numpy columns: spans reduced to onset and count, strings as codes into
    ``values`` (shared by all blocks, so no block keeps an Arrow dictionary or a string per row), booleans as
    (value, missing) pairs, trace ids as codes when ``trace_ids`` is given. The distinct (judge, threshold
    options) of the block's ``judge_config`` go to ``thresholds``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for k in VERDICT_REQUIRED:
        if batch.column(k).null_count:
            raise ValueError(f"a line lacks {k}")  # the line-by-line check names the line
    for k, allowed in VERDICT_VALUES.items():
        if not pc.all(pc.is_in(batch.column(k), pa.array(allowed))).as_py():
            raise ValueError(f"a {k} of no known value")
    h = batch.column("harmfulness")
    if pc.any(pc.or_(pc.less(h, HARMFULNESS[0]), pc.greater(h, HARMFULNESS[1]))).as_py():
        raise ValueError("a harmfulness off the scale")  # the line-by-line check names the line
    batch.column("trace_id").validate(full=True)
    ids = batch.column("trace_id").to_numpy(zero_copy_only=False)
    cols: dict[str, Any] = {"trace_id": ids if trace_ids is None else _trace_codes(ids, trace_ids, unknown)}
    for k, t in _VERDICT_FIELDS.items():
        col = batch.column(k)
        if k in ("trace_id", "score"):  # the score is checked, not used: not kept
            continue
        if t == "string":
            col.validate(full=True)  # the JSON reader does not check UTF-8 (ArrowInvalid: the slow path names the line)
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
    stage = pc.if_else(pc.is_null(config), pa.scalar(UNKNOWN), pc.struct_field(pc.struct_field(config, STAGE_KEY), "sha256"))
    columns = {k: pc.struct_field(config, k) for k in THRESHOLD_KEYS} | {STAGE_KEY: stage}
    distinct = pa.table({"judge": batch.column("judge"), **columns}).group_by(["judge", *DECISION_KEYS]).aggregate([])
    thresholds.update(zip(*(distinct.column(k).to_pylist() for k in ["judge", *DECISION_KEYS])))
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
