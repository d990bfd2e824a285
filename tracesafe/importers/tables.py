"""Tables of traces, one per row: JSONL, CSV, Parquet, Arrow, Hugging Face ``datasets`` folders.

``--response-field`` (default the first of response/output/completion/raw), ``--reasoning-field`` (default
reasoning_content/reasoning if present), ``--prompt-field`` (default prompt/instruction/question/text).
Columns named as trace fields are those fields: ``prompt_id`` (unless ``--id-field``), ``suite``, ``finish_reason``,
``n_tokens``, ``params``, ``sample``, ``created``, ``category``, ``harm_area``, ``label`` (unless named by their
``--*-field``), type-checked as in any trace record. Every other column named as a field of the record (``id``,
``thinking``, a ``raw`` beside the response field, ...) is kept as ``source_<name>``, so none is hidden by the
record's own; other columns pass through unchanged. In Parquet/Arrow/datasets inputs the location is the row number.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from .._util.fields import PROMPT_FIELDS
from ..records import Trace, json_type
from ..store import read_csv_numbered, read_jsonl_numbered
from ._base import IMPORTERS, Bad, Importer, ImportOptions, Item

RESPONSE_FIELDS = ("response", "output", "completion", "raw")
# Columns named as these trace fields are those fields (type-checked like any record's; a CSV cell read as JSON) ...
TRACE_COLUMNS = ("prompt_id", "suite", "finish_reason", "n_tokens", "params", "sample", "created")
# ... and any other column named as a field of the record import writes (id, the split's fields, a `raw` beside the
# response field, a `prompt_id` beside --id-field ...) is kept as source_<name>: the record's own would hide it.
RECORD_KEYS = frozenset({f.name for f in dataclasses.fields(Trace)} | {"schema"})  # `extra` too: records flatten it
_WHOLE = re.compile(r"-?[0-9]+(?:\.0*)?")
REASONING_FIELDS = ("reasoning_content", "reasoning")
_ROWS_PER_BATCH = 1000
log = logging.getLogger(__name__)


def read_jsonl(path: Path, opts: ImportOptions) -> Iterator[Item | Bad]:
    return _items(path, read_jsonl_numbered(path, on_bad_line=opts.on_bad_line), opts)


def read_csv(path: Path, opts: ImportOptions) -> Iterator[Item | Bad]:
    return _items(path, read_csv_numbered(path, on_bad_line=opts.on_bad_line), opts, text_cells=True)


def read_parquet(path: Path, opts: ImportOptions) -> Iterator[Item | Bad]:
    import pyarrow.parquet as pq

    try:
        batches = pq.ParquetFile(path).iter_batches(batch_size=_ROWS_PER_BATCH)
    except Exception as e:  # pyarrow raises ArrowInvalid and friends for a file that is not Parquet
        raise ValueError(f"{path}: not a Parquet file: {e}") from None
    return _items(path, _numbered(batches), opts)


def read_arrow(path: Path, opts: ImportOptions) -> Iterator[Item | Bad]:
    """An Arrow IPC file (Feather v2) or stream (what ``datasets`` writes as ``*.arrow``)."""
    import pyarrow as pa

    source = pa.memory_map(str(path))
    try:
        batches: Iterable = _file_batches(pa.ipc.open_file(source))
    except pa.ArrowInvalid:
        source.seek(0)
        try:
            batches = pa.ipc.open_stream(source)
        except pa.ArrowInvalid as e:
            raise ValueError(f"{path}: not an Arrow IPC file or stream: {e}") from None
    return _items(path, _numbered(batches), opts)


def read_datasets(path: Path, opts: ImportOptions) -> Iterator[Item | Bad]:
    """A ``save_to_disk`` folder: a Dataset, or a DatasetDict whose every split is imported (``split`` column)."""
    try:
        import datasets
    except ImportError:
        raise ValueError(f"{path}: reading a datasets folder needs `pip install datasets`") from None
    try:
        ds = datasets.load_from_disk(str(path))
    except FileNotFoundError as e:
        raise ValueError(f"{path}: not a datasets folder: {e}") from None
    splits = ds.items() if isinstance(ds, datasets.DatasetDict) else [(None, ds)]
    for name, split in splits:
        where = path if name is None else Path(f"{path}[{name}]")
        rows = ((i, dict(r) if name is None else {"split": name, **r}) for i, r in enumerate(split, 1))
        yield from _items(where, rows, opts)


def _file_batches(reader) -> Iterator:
    for i in range(reader.num_record_batches):
        yield reader.get_batch(i)


def _numbered(batches: Iterable) -> Iterator[tuple[int, dict[str, Any]]]:
    n = 0
    for batch in batches:
        for row in batch.to_pylist():
            n += 1
            yield n, row


def _pick(row: dict[str, Any], explicit: str | None, candidates: tuple[str, ...]) -> str | None:
    if explicit:
        return explicit if explicit in row else None
    return next((f for f in candidates if f in row), None)


def _items(path: Path, rows: Iterable[tuple[int, dict[str, Any]]], opts: ImportOptions, text_cells: bool = False
           ) -> Iterator[Item | Bad]:  # fmt: skip
    """``text_cells``: every cell is text (CSV), so a trace field's cell is read as its type (``_cell``)."""
    no_response: Counter[str] = Counter()  # field -> rows where it and the reasoning are null
    for lineno, row in rows:
        where = f"{path}:{lineno}"
        rf = _pick(row, opts.response_field, RESPONSE_FIELDS)
        if rf is None:
            want = opts.response_field or "/".join(RESPONSE_FIELDS)
            yield Bad(where, f"no field {want!r} (response); fields: {', '.join(map(str, row))}")
            continue
        if opts.reasoning_field and opts.reasoning_field not in row:
            yield Bad(where, f"no field {opts.reasoning_field!r} (reasoning); fields: {', '.join(map(str, row))}")
            continue
        pf = None if opts.prompt_field else _pick(row, None, PROMPT_FIELDS)
        zf = _pick(row, opts.reasoning_field, REASONING_FIELDS)
        if row[rf] is None and (zf is None or row[zf] is None):  # a failed generation, as other importers count it
            no_response[rf] += 1
            continue
        # A text field of another type, named as the user knows it (not as the record's raw / reasoning).
        wrong = [f"{what} field {f!r} is {json_type(row[f], article=True)}, expected a string"
                 for f, what in ((rf, "response"), (zf, "reasoning")) if f and not isinstance(row[f], (str, type(None)))]  # fmt: skip
        if wrong:
            yield Bad(where, wrong[0])
            continue
        used = {rf, pf, zf, "model", "prompt_rendered", opts.prompt_field, opts.id_field,
                opts.category_field or "category", opts.harm_area_field or "harm_area", opts.label_field or "label",
                *(c for c in TRACE_COLUMNS if not (c == "prompt_id" and opts.id_field))}  # fmt: skip
        own = {c: _cell(c, row[c], text_cells) for c in TRACE_COLUMNS if c in row}
        if text_cells and "synthetic" in row:  # the report's flag (true/false), as a JSON table would give it
            row = {**row, "synthetic": _cell("synthetic", row["synthetic"], text_cells)}
        yield Item(
            where=where,
            fields=row,
            raw="" if row[rf] is None else row[rf],  # null content beside reasoning: cut off while thinking
            model=row.get("model") or "",
            prompt=row.get(pf) if pf else None,
            reasoning=row.get(zf) if zf else None,
            prompt_rendered=row.get("prompt_rendered"),
            fallback_id=f"{path.stem}-{lineno}",
            prompt_id=None if opts.id_field else own.get("prompt_id"),
            sample=own.get("sample"),
            finish_reason=own.get("finish_reason"),
            n_tokens={} if own.get("n_tokens") is None else own["n_tokens"],  # an empty cell: none
            params={} if own.get("params") is None else own["params"],
            suite=own.get("suite"),
            created=own.get("created"),
            extra={_unhidden(k, row): v for k, v in row.items() if k not in used},
        )
    for field, n in no_response.items():
        log.warning("%s: %d row(s) have a null %r and no reasoning (failed generations), none imported", path, n, field)


def _cell(column: str, v: Any, text: bool) -> Any:
    """A trace field's value from a table cell: a Parquet/Arrow timestamp is ISO text; a CSV cell (``text``) is ""
    for none, a whole number for ``sample``, JSON for ``n_tokens``/``params``, true/false for ``synthetic``. Anything
    else is left for the record's type check to name."""
    if hasattr(v, "isoformat"):
        return v.isoformat()
    if not text or not isinstance(v, str):
        return v
    if v == "":
        return None
    if column == "sample" and _WHOLE.fullmatch(v):
        return int(float(v))  # "3", or "3.0" as pandas writes an integer column with a gap
    if column == "synthetic" and v.lower() in ("true", "false"):
        return v.lower() == "true"
    if column in ("n_tokens", "params") and v.lstrip().startswith("{"):
        try:
            return orjson.loads(v)
        except orjson.JSONDecodeError:
            return v
    return v


def _unhidden(column: str, row: dict[str, Any]) -> str:
    """The column's name in the record: source_<name> for a record key, prefixed again while another column of the
    table has that name (never overwritten)."""
    if column not in RECORD_KEYS:
        return column
    name = f"source_{column}"
    while name in row:
        name = f"source_{name}"
    return name


IMPORTERS.add("jsonl", Importer(read_jsonl, "one trace per line", True))
IMPORTERS.add("csv", Importer(read_csv, "one trace per row", True))
IMPORTERS.add("parquet", Importer(read_parquet, "one trace per row", True))
IMPORTERS.add("arrow", Importer(read_arrow, "Arrow IPC file or stream, one trace per row", True))
IMPORTERS.add("datasets", Importer(read_datasets, "a Hugging Face `save_to_disk` folder, every split", True))
