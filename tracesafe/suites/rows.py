"""The rows of a user's table, numbered for FILE:LINE errors: what suites, labels and safety data are read from."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def read_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line or row number, row) of a suite or labels file: CSV, JSONL, Parquet, or a ``datasets`` folder
    (its ``test`` split, else its first)."""
    if path.is_dir():
        try:
            import datasets
        except ImportError as e:
            raise RuntimeError(f"{path}: reading a datasets directory needs `pip install datasets`") from e
        ds = datasets.load_from_disk(str(path))
        if isinstance(ds, datasets.DatasetDict):
            split_name = "test" if "test" in ds else next(iter(ds))
            ds = ds[split_name]
        return [(i + 1, dict(r)) for i, r in enumerate(ds)]
    suffix = path.suffix.lower()
    if suffix == ".csv":
        from ..store import read_csv_numbered

        return list(read_csv_numbered(path))
    if suffix in (".jsonl", ".json"):
        from ..store import read_jsonl

        return list(enumerate(read_jsonl(path), 1))
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return [(i + 1, r) for i, r in enumerate(pq.read_table(path).to_pylist())]
    raise ValueError(f"{path}: unsupported suite file type {suffix!r} (csv, jsonl, parquet, or a datasets dir)")
