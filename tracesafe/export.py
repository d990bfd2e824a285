"""`tracesafe export`: a whole run as one tidy table, one row per trace x segment x judge, written as Parquet or
as a Hugging Face ``datasets`` folder (``save_to_disk``): the table a researcher loads into pandas or pushes to
a hub. One record file alone is exported as it is (``export_parquet``).

Rows come from the verdicts, each joined to its trace's prompt and metadata (``_schema`` lists the columns).
Nothing is dropped: an error verdict is a row with ``status = "error"``, ``verdict = "error"`` and its error text
(never safe); a verdict whose trace is not among the inputs keeps null trace columns. As in the report, a verdict
repeated for the same trace, segment, judge and judge version counts once: the last one wins.

Streaming: traces are read once into a compact metadata table (no thinking or answer text), verdicts are read
line by line (checked as the report checks them) into batches of ``batch_rows`` joined in Arrow and written as
Parquet row groups; only the identity columns of every verdict (~50 bytes each) stay for the duplicate check, so
memory grows with the number of traces, not with the verdicts' size. Measured with benchmarks/export_scale.py
(the run of report_scale.py: 1,000,000 verdicts on 200,000 traces, 555 MB of JSONL; 2 shared cores): Parquet
18 s of CPU and 0.56 GB peak RSS (23 s wall at load 5; 100,000 verdicts: 2.9 s, 0.34 GB); ``--as datasets``
22 s of CPU, 0.57 GB (the Parquet pass, then ``datasets``' conversion and ``save_to_disk``). Most of the time
is the per-line check of the verdicts.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal, TypeVar

import orjson

from .store import OnBadLine, atomic_output, read_jsonl

As = Literal["parquet", "datasets"]
T = TypeVar("T")
TRACE_COLUMNS = ("sample", "model", "prompt_id", "prompt", "suite", "category", "harm_area", "label", "synthetic",
                 "split_status", "split_rule", "split_format")  # fmt: skip
_KEYS = ("trace_id", "segment", "judge", "judge_version")  # a verdict's identity, as the report dedupes


def _schema():
    import pyarrow as pa

    s, f, b = pa.string(), pa.float64(), pa.bool_()
    return pa.schema([
        ("trace_id", s), ("sample", pa.int64()), ("model", s), ("prompt_id", s), ("prompt", s), ("suite", s),
        ("category", s), ("harm_area", s), ("label", s), ("synthetic", b), ("segment", s), ("split_status", s),
        ("split_rule", s), ("split_format", s), ("judge", s), ("judge_version", s), ("judge_kind", s),
        ("judge_config_hash", s), ("status", s), ("verdict", s), ("unsafe", b), ("refused", b), ("score", f),
        ("harmfulness", f), ("categories", pa.list_(s)), ("spans", pa.list_(pa.list_(f))), ("error", s),
        ("raw_output", s), ("verdict_id", s),
    ])  # fmt: skip


def export_run(traces: list[Path], verdicts: Path, output: Path, *, as_: As = "parquet", on_bad_line: str = "error",
               batch_rows: int = 65_536) -> dict[str, int]:
    """Write the run's table to ``output`` (a Parquet file, or a ``datasets`` folder); return counts: ``rows``,
    ``errors`` (error verdicts, kept as rows), ``duplicates`` (repeated verdicts left out), ``orphans`` (verdicts
    whose trace is missing, kept), ``unjudged`` (traces without any verdict, not in the table)."""
    return _output(output, [*traces, verdicts], as_,
                   lambda rows, work: _write_rows(traces, verdicts, rows, work, on_bad_line, batch_rows))


def export_records(path: Path, output: Path, *, as_: As = "parquet", on_bad_line: str = "error") -> int:
    """One record file (prompts, traces or verdicts) as it is, one row per record; returns the row count."""
    return _output(output, [path], as_, lambda rows, work: export_parquet(path, rows, on_bad_line=on_bad_line))


def _output(output: Path, inputs: list[Path], as_: As, write: Callable[[Path, Path], T]) -> T:
    """``write(PARQUET, WORKDIR)`` into a work folder beside ``output``, then that Parquet file becomes ``output``
    or is converted to a ``datasets`` folder there; atomic, so a failure leaves no output."""
    if as_ == "datasets":
        _datasets()  # before any work
    output = Path(output)
    full = Path(os.path.realpath(output))  # the work folder is a sibling of the output ("." has no name to prefix)
    # A datasets folder always holds dataset_info.json: an earlier export may be replaced, no other folder.
    with atomic_output(output, inputs, folder=as_ == "datasets", marker="dataset_info.json") as tmp, \
            tempfile.TemporaryDirectory(dir=full.parent, prefix=f".{full.name}.", suffix=".tmp") as work:
        rows = Path(work) / "rows.parquet"
        result = write(rows, Path(work))
        if as_ == "datasets":
            import pyarrow.parquet as pq

            if pq.ParquetFile(rows).metadata.num_rows == 0:  # datasets saves such a folder but cannot load it
                raise ValueError(f"{output}: no rows to export; a datasets folder cannot be empty "
                                 "(use -o FILE.parquet)")
            _save_datasets(rows, tmp, Path(work) / "cache")
        else:
            os.replace(rows, tmp)
    return result


def _datasets():
    """The ``datasets`` package, imported before any work: when it is not installed the ModuleNotFoundError names
    it, and the command line turns that into the pip install."""
    import datasets

    return datasets


def _save_datasets(parquet: Path, folder: Path, cache: Path) -> None:
    datasets = _datasets()
    quiet = datasets.utils.are_progress_bars_disabled()
    datasets.disable_progress_bars()  # stderr keeps the one summary line
    try:
        # from_parquet converts row group by row group into a memory-mapped Arrow cache: memory stays flat.
        datasets.Dataset.from_parquet(str(parquet), cache_dir=str(cache)).save_to_disk(str(folder))
    finally:
        if not quiet:
            datasets.enable_progress_bars()


def _write_rows(traces: list[Path], verdicts: Path, out: Path, work: Path, on_bad_line: str,
                batch_rows: int) -> dict[str, int]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    schema = _schema()
    meta, ids = _trace_table(traces, on_bad_line)
    first = work / "pass1.parquet"
    # Per verdict, its identity and two flags: small, kept for the duplicate check and the counts at the end.
    marks = pa.schema([*(schema.field(k) for k in _KEYS), ("orphan", pa.bool_()), ("error", pa.bool_())])
    parts = []
    with pq.ParquetWriter(str(first), schema, compression="zstd") as writer:
        for batch in _verdict_batches(verdicts, on_bad_line, batch_rows):
            idx = pc.index_in(batch.column("trace_id"), value_set=ids)
            joined = meta.take(idx)
            cols = {c: joined.column(c) if c in TRACE_COLUMNS else batch.column(c) for c in schema.names}
            writer.write_table(pa.table(cols, schema=schema), row_group_size=batch_rows)
            parts.append(pa.table([*(batch.column(k) for k in _KEYS), pc.is_null(idx),
                                   pc.fill_null(pc.equal(batch.column("status"), "error"), False)], schema=marks))
    flags = pa.concat_tables(parts) if parts else marks.empty_table()
    n = flags.num_rows
    last = flags.append_column("i", pa.array(np.arange(n))).group_by(list(_KEYS)).aggregate([("i", "max")])
    if last.num_rows == n:
        os.replace(first, out)
    else:
        keep = np.zeros(n, dtype=bool)
        keep[last.column("i_max").to_numpy()] = True
        flags = flags.filter(keep)
        start = 0
        with pq.ParquetWriter(str(out), schema, compression="zstd") as writer:
            for b in pq.ParquetFile(first).iter_batches(batch_size=batch_rows):
                writer.write_table(pa.Table.from_batches([b.filter(keep[start:start + len(b)])], schema),
                                   row_group_size=batch_rows)
                start += len(b)
    judged = pc.is_in(ids, value_set=pc.unique(flags.column("trace_id")))
    return {"rows": flags.num_rows, "errors": _count(flags.column("error")), "duplicates": n - flags.num_rows,
            "orphans": _count(flags.column("orphan")), "unjudged": len(ids) - _count(judged)}


def _count(mask) -> int:
    import pyarrow.compute as pc

    return pc.sum(mask).as_py() or 0


def _trace_table(paths: list[Path], on_bad_line: str):
    """(metadata table aligned with ``ids``, ids) of the traces: the report's loader, keeping the prompt text
    and split rule; the report's "(none)" placeholder back to null."""
    import pyarrow as pa

    from .analysis import NONE, load_traces

    t = load_traces(paths, on_bad_line, keep=("prompt", "split_rule", "split_format"))
    cols = {}
    for c in TRACE_COLUMNS:
        s = t[c].astype(object)
        if c in ("model", "suite", "category", "harm_area", "label", "split_status"):
            s = s.where(s != NONE, None)
        cols[c] = pa.array(s.where(s.notna(), None).tolist(), _schema().field(c).type)
    return pa.table(cols), pa.array(t["id"].astype(object).tolist(), pa.string())


def _verdict_batches(path: Path, on_bad_line: str, batch_rows: int) -> Iterator[Any]:
    """The verdict columns of ``_schema`` in tables of ``batch_rows`` rows; a bad line is FILE:LINE (or
    skipped) as in the report, which reads the same fields with the same checks."""
    import orjson
    import pyarrow as pa

    from .analysis.load import _check_verdict
    from .judges import list_judges
    from .records import Verdict, stable_id

    kinds = {j.name: j.kind for j in list_judges()}
    schema = _schema()
    names = [f.name for f in schema if f.name not in TRACE_COLUMNS]
    vschema = pa.schema([schema.field(c) for c in names])
    hashes: dict[bytes, str] = {}

    def check(rec: dict[str, Any]) -> None:
        _check_verdict(rec)
        Verdict.check(rec, ("categories", "spans", "error", "raw_output"))

    def config_hash(cfg: Any) -> str | None:
        if cfg is None:
            return None
        blob = orjson.dumps(cfg, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
        h = hashes.get(blob)
        if h is None:
            h = hashes[blob] = stable_id(cfg)
        return h

    def table(recs: list[dict[str, Any]]):
        derived = ("judge_kind", "judge_config_hash", "verdict", "verdict_id")
        cols = {k: [r.get(k) for r in recs] for k in names if k not in derived}
        cols["verdict_id"] = [r.get("id") for r in recs]
        for k in ("trace_id", "segment", "judge", "judge_version", "status", "verdict_id"):
            cols[k] = [v if v is None or type(v) is str else str(v) for v in cols[k]]  # as the report reads them
        cols["judge_kind"] = [kinds.get(j) for j in cols["judge"]]
        cols["judge_config_hash"] = [config_hash(r.get("judge_config")) for r in recs]
        cols["verdict"] = list(map(_label, cols["status"], cols["unsafe"], cols["refused"]))
        return pa.table(cols, schema=vschema)

    recs = []
    for rec in read_jsonl(path, on_bad_line=on_bad_line, check=check):
        recs.append(rec)
        if len(recs) >= batch_rows:
            yield table(recs)
            recs = []
    if recs:
        yield table(recs)


def _label(status: str | None, unsafe: bool | None, refused: bool | None) -> str | None:
    if status == "error":
        return "error"
    if status != "ok":
        return None
    if unsafe is not None:
        return "unsafe" if unsafe else "safe"
    if refused is not None:
        return "refused" if refused else "not_refused"
    return None


def _columnar(records: list[dict[str, Any]]) -> dict[str, list[Any]]:
    cols: dict[str, list[Any]] = {}
    for i, r in enumerate(records):
        for k in r:
            if k not in cols:
                cols[k] = [None] * i
        for k, col in cols.items():
            col.append(r.get(k))
    # Free-form dicts (params, meta, n_tokens) differ in keys from line to line, and a list may mix types
    # (the refusal judge's match: ["cannot", 0, 12]); Parquet wants one type per column, so such columns
    # are stored as JSON text.
    for k, col in cols.items():
        if any(isinstance(v, dict) for v in col) or any(isinstance(v, list) for v in col) and not _typed_list(col):
            cols[k] = [None if v is None else orjson.dumps(v).decode() for v in col]
    return cols


def _typed_list(col: list[Any]) -> bool:
    import pyarrow as pa

    try:
        pa.array(col)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return False
    return True


def export_parquet(
    path: str | os.PathLike,
    output: str | os.PathLike,
    *,
    on_bad_line: OnBadLine = "error",
    batch_rows: int = 50_000,
) -> int:
    """Write a record file to Parquet in row groups of ``batch_rows``; returns the number of rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    n = 0
    batch: list[dict[str, Any]] = []
    schema = None

    def flush():
        nonlocal writer, schema
        table = pa.table(_columnar(batch))
        if writer is None:
            schema = table.schema
            writer = pq.ParquetWriter(str(tmp), schema)
        else:
            table = _conform(table, schema)
        writer.write_table(table)

    with atomic_output(output, [path]) as tmp:
        try:
            for rec in read_jsonl(path, on_bad_line=on_bad_line):
                batch.append(rec)
                n += 1
                if len(batch) >= batch_rows:
                    flush()
                    batch = []
            if batch or writer is None:
                flush()
        finally:
            if writer is not None:
                writer.close()
    return n


def _conform(table, schema):
    import pyarrow as pa

    cols = []
    for f in schema:
        if f.name in table.column_names:
            col = table[f.name]
            cols.append(col if col.type == f.type else col.cast(f.type))
        else:
            cols.append(pa.nulls(len(table), f.type))
    extra = set(table.column_names) - set(schema.names)
    if extra:
        raise ValueError(f"columns {sorted(extra)} appear after the first row group; export with a larger batch")
    return pa.Table.from_arrays(cols, schema=schema)
