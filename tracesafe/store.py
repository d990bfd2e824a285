"""Append-only JSONL record files: torn-line-proof writes, located read errors, resume, merge (Parquet:
``export.export_parquet``).

A writer only ever appends whole lines with one ``write`` per batch. A process killed mid-write
can leave at most one torn last line; opening the file for append again cuts it off (a last line
that parses is kept: only its newline was missing), so every complete line stays valid and the
run continues where it stopped.

Outputs are guarded (``_util/atomic.py``, re-exported here): a writer holds ``OUTPUT.lock`` (a second
writer fails at once), never writes a file it reads, and whole-file outputs replace the output at the end.
"""

from __future__ import annotations

import csv
import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Literal

import orjson

from ._util.atomic import (
    OutputError,
    acquire,
    atomic_output,
    file_lock,
    output_lock,
    prepare_output,
    refuse_input_as_output,
)

__all__ = ["BadLineError", "JsonlWriter", "OnBadLine", "OutputError", "SeenIds", "atomic_output", "dumps_line",
           "merge", "output_lock", "read_csv_numbered", "read_ids", "read_jsonl", "read_jsonl_numbered",
           "refuse_input_as_output", "repair_torn_tail", "write_jsonl"]  # fmt: skip
OnBadLine = Literal["error", "skip"]
log = logging.getLogger(__name__)
SHARED_LOCK_WAIT = 600.0  # seconds a shared-file writer waits for its turn (others hold it one write at a time)


class BadLineError(ValueError):
    """A line of a record file that cannot be read; the message starts with ``FILE:LINE:``."""

    def __init__(self, path: str | os.PathLike, lineno: int, reason: str):
        self.path, self.lineno, self.reason = str(path), lineno, reason
        super().__init__(f"{path}:{lineno}: {reason}")


def repair_torn_tail(path: str | os.PathLike) -> int:
    """Cut a last line that has no newline and does not parse (an interrupted write); a last line that
    parses only gets its newline. Logs a warning with the line number and size of what was cut (never its
    text). Returns the bytes removed."""
    p = Path(path)
    if not p.exists():
        return 0
    with open(p, "r+b") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return 0
        # Walk back in blocks to the last newline: the torn line can be long (a whole trace).
        pos, block = size, 1 << 16
        keep = 0
        while pos > 0:
            start = max(0, pos - block)
            f.seek(start)
            chunk = f.read(pos - start)
            i = chunk.rfind(b"\n")
            if i >= 0:
                keep = start + i + 1
                break
            pos = start
        f.seek(keep)
        tail = f.read()
        try:
            orjson.loads(tail)
        except orjson.JSONDecodeError:
            pass
        else:  # a whole record whose newline was not written yet
            f.write(b"\n")
            return 0
        f.truncate(keep)
    if tail.strip():
        lineno = _count_lines(p) + 1
        log.warning("%s:%d: cut a torn last line (%d bytes) left by an interrupted write", p, lineno, size - keep)
    return size - keep


def _count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 20), b""))


class JsonlWriter:
    """Appends records to a JSONL file, one ``write`` + flush per batch; repairs a torn tail on open.

    ``lock``: "hold" (default) holds ``PATH.lock`` until close, and a second writer fails at once with
    OutputError; "per_write" takes it around the repair and each batch, waiting its turn, for a file
    that several runs share (the judge cache); None for a private file (a temporary one).
    ``inputs``: files being read while this one is written; an output that is one of them is refused."""

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        fsync: bool = False,
        mode: Literal["a", "w"] = "a",
        lock: Literal["hold", "per_write"] | None = "hold",
        inputs: Iterable[str | os.PathLike] = (),
    ):
        self.path = Path(path)
        prepare_output(self.path, inputs)
        self._lock = None if lock is None else file_lock(self.path, 0 if lock == "hold" else SHARED_LOCK_WAIT)
        self._per_write = lock == "per_write"
        if self._lock is not None:
            acquire(self._lock, self.path)
        try:
            self.repaired_bytes = repair_torn_tail(self.path) if mode == "a" else 0
            self._f = open(self.path, "ab" if mode == "a" else "wb", buffering=0)
        except BaseException:
            if self._lock is not None:
                self._lock.release()
            raise
        if self._per_write:
            self._lock.release()
        self._fsync = fsync
        self.written = 0

    def write(self, record: dict[str, Any] | Any) -> None:
        self.write_batch([record])

    def write_batch(self, records: Iterable[dict[str, Any] | Any]) -> None:
        lines = [dumps_line(r) for r in records]
        if not lines:
            return
        data = b"".join(lines)
        with self._lock if self._per_write else nullcontext():
            view = memoryview(data)
            try:
                while view:  # os-level write may be partial for huge batches
                    n = self._f.write(view)
                    view = view[n:]
                if self._fsync:
                    os.fsync(self._f.fileno())
            except OSError as e:  # disk full, file too large: name the file (the OS error does not)
                if e.filename is None:
                    raise OSError(e.errno, e.strerror, str(self.path)) from e
                raise
        self.written += len(lines)

    def close(self) -> None:
        if self._f.closed:
            return
        self._f.close()
        if self._lock is not None and not self._per_write:
            self._lock.release()

    def __enter__(self) -> "JsonlWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_jsonl(
    path: str | os.PathLike,
    records: Iterable[dict[str, Any] | Any],
    *,
    inputs: Iterable[str | os.PathLike] = (),
    lock: bool = True,
    batch: int = 1000,
) -> int:
    """Write a whole record file atomically (``atomic_output``), streaming ``records`` in batches.
    Returns the number written."""
    with atomic_output(path, inputs, lock=lock) as tmp, JsonlWriter(tmp, mode="w", lock=None) as w:
        chunk: list = []
        for rec in records:
            chunk.append(rec)
            if len(chunk) >= batch:
                w.write_batch(chunk)
                chunk = []
        w.write_batch(chunk)
    return w.written


def dumps_line(record: dict[str, Any] | Any) -> bytes:
    if not isinstance(record, dict):
        record = record.to_dict()
    return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_SERIALIZE_NUMPY)


def read_jsonl_numbered(
    path: str | os.PathLike,
    *,
    on_bad_line: OnBadLine = "error",
    warn: bool | Literal["complete"] = True,
    check: Callable[[dict[str, Any]], None] | None = None,
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line number, object)`` for each line. A line that is not a JSON object, or that ``check``
    rejects with ValueError, raises ``BadLineError`` (``FILE:LINE: reason``) or is skipped with a logged
    warning (``warn="complete"``: not for a torn last line, which a resumed writer cuts and reports itself);
    blank lines are ignored. Memory is constant in the file size."""
    with open(path, "rb") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = orjson.loads(line)
                if not isinstance(obj, dict):
                    raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
                if check is not None:
                    check(obj)
            except orjson.JSONDecodeError as e:
                reason = json_error(line, e)
            except ValueError as e:
                reason = str(e)
            else:
                yield lineno, obj
                continue
            if on_bad_line == "error":
                raise BadLineError(path, lineno, reason) from None
            if warn is True:
                log.warning("skipped %s:%d: %s", path, lineno, reason)
            elif warn == "complete" and line.endswith(b"\n"):  # an output being resumed: the line stays in it
                log.warning("skipped %s:%d (not done; the line stays in the file, where other readers refuse it: fix or "
                            "delete it): %s", path, lineno, reason)  # fmt: skip


def json_error(line: bytes, e: Exception) -> str:
    """Why a JSONL line did not parse, as every reader says it: "torn last line (interrupted write?): " for a last
    line without its newline, else "invalid JSON: ", then orjson's message, but for text that is not UTF-8 (which
    orjson calls "surrogates not allowed") the byte and its offset in the line. Another error: its message."""
    if not isinstance(e, orjson.JSONDecodeError):
        return str(e)
    torn = not line.endswith(b"\n")
    return ("torn last line (interrupted write?): " if torn else "invalid JSON: ") + (_not_utf8(line) or str(e))


def _not_utf8(raw: bytes) -> str | None:
    """Why ``raw`` is not UTF-8 text (the first bad byte and its byte offset), or None."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return f"not UTF-8 text (byte {raw[e.start]:#04x} at byte {e.start + 1} of the line)"
    return None


def _first_line_not_utf8(path: str | os.PathLike) -> tuple[int, str]:
    """The line number of the first line of ``path`` that is not UTF-8, and why (lines end at CR, LF or CRLF, as
    a text stream reads them)."""
    with open(path, "rb") as f:
        data = f.read()
    for lineno, raw in enumerate(re.split(rb"\r\n|\r|\n", data), 1):
        reason = _not_utf8(raw)
        if reason:
            return lineno, reason
    return 1, "not UTF-8 text"  # pragma: no cover - the decoder found a byte the lines do not


def read_csv_numbered(path: str | os.PathLike, *, skip_leading_comments: bool = False,
                      on_bad_line: OnBadLine = "error") -> Iterator[tuple[int, dict[str, str]]]:  # fmt: skip
    """Yield ``(line number, row)`` for each row of a CSV file with a header, the number being the line where
    the row starts (a quoted cell may span lines). A row with more or fewer fields than the header raises
    ``BadLineError``, or is skipped with a logged warning under ``on_bad_line="skip"``. An unclosed quote and text
    that is not UTF-8 raise it either way: past them no row boundary can be trusted (Python's csv module would
    read an unclosed quote as one cell running to the end of the file). ``skip_leading_comments`` skips ``#``
    lines before the header (PyRIT's files open with ``# dataset_version=...``). A UTF-8 byte order mark (Excel's
    "CSV UTF-8") is dropped, not read into the first column's name."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            yield from _csv_rows(f, path, skip_leading_comments, on_bad_line)
    except UnicodeDecodeError:  # the decoder knows an offset in its buffer, not the line: find it
        raise BadLineError(path, *_first_line_not_utf8(path)) from None


def _csv_rows(f, path, skip_leading_comments: bool, on_bad_line: OnBadLine) -> Iterator[tuple[int, dict[str, str]]]:
    skipped = 0
    while skip_leading_comments:
        pos = f.tell()
        if not f.readline().startswith("#"):
            f.seek(pos)
            break
        skipped += 1
    # A reasoning trace is often longer than the csv module's default cell limit (131,072 characters). The limit
    # is the module's, not the reader's: raised, never lowered (a C long, so 2**31 - 1 on every platform).
    csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))
    reader = csv.reader(f, strict=True)
    start = skipped + 1
    try:
        header = next(reader, None)
        twice = sorted({c for c in header or () if header.count(c) > 1})
        if twice:  # a dict row would keep the last such cell and lose the others
            raise BadLineError(path, start, f"column {twice[0]!r} appears more than once in the header")
        start = skipped + reader.line_num + 1
        for fields in reader if header else ():
            if fields and len(fields) != len(header):
                n = len(fields)
                reason = f"{n} field{'' if n == 1 else 's'}, the header has {len(header)}"
                if on_bad_line == "error":
                    raise BadLineError(path, start, reason)
                log.warning("skipped %s:%d: %s", path, start, reason)
            elif fields:  # a blank line is no row
                yield start, dict(zip(header, fields))
            start = skipped + reader.line_num + 1
    except csv.Error as e:
        raise BadLineError(path, start, f"malformed CSV: {e}") from None


def read_jsonl(
    path: str | os.PathLike,
    *,
    on_bad_line: OnBadLine = "error",
    warn: bool | Literal["complete"] = True,
    check: Callable[[dict[str, Any]], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """The objects of ``read_jsonl_numbered`` without their line numbers."""
    for _, obj in read_jsonl_numbered(path, on_bad_line=on_bad_line, warn=warn, check=check):
        yield obj


def read_ids(path: str | os.PathLike, key: str = "id") -> set[str]:
    """Ids already written (for resume); a torn last line is not a finished record and is ignored, another line
    that does not parse is not done either, and is named in a warning (it stays in the file)."""
    if not Path(path).exists():
        return set()
    return {r[key] for r in read_jsonl(path, on_bad_line="skip", warn="complete") if key in r}


class SeenIds:
    """Ids read so far, where each was first read and a hash of its texts. ``add`` is True for a new id and False
    for the same record again; another text under an id already read raises BadLineError naming both places (two
    models imported without a model name share trace ids: keeping the first would drop the other unseen)."""

    def __init__(self, key: str = "id"):
        self.key, self.first = key, {}

    def add(self, rec: dict[str, Any], where: str, lineno: int) -> bool:
        rid, entry = rec.get(self.key), (where, lineno, hash(tuple(map(rec.get, ("raw", "reasoning", "thinking", "answer", "model")))))
        first = self.first.setdefault(rid, entry)
        if first[2] != entry[2]:
            raise BadLineError(where, lineno, f"{self.key} {rid!r} was read at {first[0]}:{first[1]} with another text or model (an id "
                                              "names model, prompt, sample and sampling parameters, not the engine or the source "
                                              "file: imports of two models without a model name, or two engines' traces, share "
                                              "ids; give each `tracesafe import --model NAME`, keep such files apart)")  # fmt: skip
        return first is entry


def merge(
    inputs: Iterable[str | os.PathLike],
    output: str | os.PathLike,
    *,
    key: str = "id",
    agree_on: tuple[str, ...] = ("model", "model_hash", "params"),
) -> dict[str, int]:
    """Concatenate record files, keeping the first record of each id. All records must agree on the
    ``agree_on`` fields (those they have), else ValueError names both files: shards of one run that differ
    in model, weights (``model_hash``, from generate) or sampling params would silently corrupt every rate
    computed from the merge. Another text under an id already read is bad input (``SeenIds``), as is a record of
    another kind (its ``schema``: a verdict among traces) than the first."""
    inputs = list(inputs)
    seen = SeenIds(key)
    reference: dict[str, tuple[Any, str]] = {}
    counts = {"read": 0, "written": 0, "duplicates": 0}
    first_kind: list[tuple[str, str]] = []

    def unique():
        for path in inputs:
            where = str(path)
            for lineno, rec in read_jsonl_numbered(path):
                counts["read"] += 1
                kind = str(rec.get("schema") or "").partition("/")[0].removeprefix("tracesafe.")
                if kind and not first_kind:
                    first_kind.append((kind, f"{where}:{lineno}"))
                elif kind and first_kind[0][0] != kind:
                    raise BadLineError(where, lineno, f"a {kind} record, but {first_kind[0][1]} is a {first_kind[0][0]} "
                                                      "record: merge files of one kind")  # fmt: skip
                for field_name in agree_on:
                    if field_name not in rec:
                        continue
                    val = rec[field_name]
                    ref_val, ref_path = reference.setdefault(field_name, (val, where))
                    if ref_val != val:
                        raise ValueError(f"{path}: field {field_name!r} is {val!r} but {ref_path} has {ref_val!r}; "
                                         "shards of one run must share model and params")  # fmt: skip
                if not seen.add(rec, where, lineno):
                    counts["duplicates"] += 1
                    continue
                yield rec

    counts["written"] = write_jsonl(output, unique(), inputs=inputs)
    return counts
