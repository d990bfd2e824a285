"""Import traces made elsewhere as Trace records, split on the fly. One module per source.

Each importer reads its format and yields ``Item`` (one generation) or ``Bad`` (a record that cannot be
imported); this module applies what is common to all of them: ``--prompt-field``/``--id-field``/
``--category-field``/``--harm-area-field``/``--label-field`` look-ups, type checks, sample numbering, the
thinking/answer split, ``--on-bad-line`` and the atomic write.

To add an importer:
1. write ``tracesafe/importers/<source>.py`` with ``read(path, opts) -> Iterator[Item | Bad]`` (a located
   ``Bad`` for a record it cannot read, never an exception for one; ``JsonDocument`` locates JSON values);
2. end it with ``IMPORTERS.add("<name>", Importer(read, "one-line help", table=False))``;
3. add the module to ``IMPORTERS``'s built-in modules in ``_base.py`` (a third-party package names its
   module in the ``tracesafe.importers`` entry-point group instead);
4. add a real file of that source to ``tests/data/`` and its cases to ``tests/test_importers.py``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .._util.fields import parse_label
from ..records import Trace, json_type, stable_id, trace_id
from ..split import split_record
from ..store import write_jsonl
from ._base import IMPORTERS, MISSING, Bad, Importer, ImportOptions, Item, lookup

log = logging.getLogger(__name__)


def import_file(
    fmt: str,
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    model: str = "",
    prompt_field: str | None = None,
    response_field: str | None = None,
    reasoning_field: str | None = None,
    id_field: str | None = None,
    category_field: str | None = None,
    harm_area_field: str | None = None,
    label_field: str | None = None,
    on_bad_line: str = "error",
    reasoning_format: str | None = None,
) -> int:
    """Convert ``src`` in format ``fmt`` into split Trace records at ``dst`` (atomically), split by the reasoning
    format ``reasoning_format`` (default: detected per record). Returns the count."""
    if reasoning_format not in (None, "auto"):
        from ..formats import get

        get(reasoning_format)  # an unknown name fails before any work
    importer = IMPORTERS.get(fmt)
    if not importer.table and (response_field or reasoning_field):
        tables_ = ", ".join(k for k, v in IMPORTERS.items() if v.table)
        raise ValueError(f"--response-field/--reasoning-field apply to {tables_}")
    src, dst = Path(src), Path(dst)
    if src.is_dir() != (fmt == "datasets"):
        raise ValueError(f"{src}: is a folder" if src.is_dir() else f"{src}: not a folder (datasets reads a save_to_disk folder)")
    opts = ImportOptions(model, prompt_field, response_field, reasoning_field, id_field, category_field,
                         harm_area_field, label_field, on_bad_line, reasoning_format)  # fmt: skip
    records = _Records(opts, fmt, importer.table)

    def checked() -> Iterator[dict[str, Any]]:
        n = 0
        for rec in records(importer.read(src, opts)):
            n += 1
            yield rec
        # A field name given explicitly that no record has is a typo, not "no categories": raised before the
        # output replaces anything.
        for opt, name in (("category", category_field), ("harm-area", harm_area_field), ("label", label_field),
                          ("id", id_field)):  # fmt: skip
            if name and n and name not in records.found:
                raise ValueError(f"{src}: no record has field {name!r} (--{opt}-field)")

    dst.parent.mkdir(parents=True, exist_ok=True)
    n = write_jsonl(dst, checked(), inputs=[src])
    if not n:
        log.warning("%s: no traces found in it", src)
    if records.unnamed:  # ids hash the model name: two unnamed models' traces of one prompt would share ids
        log.warning("%s: %d of %d records name no model (recorded as model ''); give one with --model NAME, or "
                    "traces of another unnamed model get the same ids", src, records.unnamed, n)  # fmt: skip
    return n


class _Records:
    """Items to split Trace records: field look-ups, type checks, sample numbering, ``--on-bad-line``."""

    def __init__(self, opts: ImportOptions, fmt: str, table: bool):
        self.opts, self.backend, self.table = opts, f"import:{fmt}", table
        self.samples: dict[tuple[str, str], int] = {}  # (model, prompt id) -> next sample number
        self.prompts: dict[tuple[str, str], tuple[int | None, str]] = {}  # (model, prompt id) -> its prompt's hash, where
        self.found: set[str] = set()  # explicitly named fields seen in at least one record
        self.unnamed = 0  # records with no model name

    def __call__(self, items: Iterator[Item | Bad]) -> Iterator[dict[str, Any]]:
        for item in items:
            rec = item if isinstance(item, Bad) else self.record(item)
            if isinstance(rec, Bad):
                if self.opts.on_bad_line == "error":
                    raise ValueError(f"{rec.where}: {rec.reason}")
                log.warning("skipped %s: %s", rec.where, rec.reason)
                continue
            yield rec

    def record(self, item: Item) -> dict[str, Any] | Bad:
        opts, f = self.opts, item.fields
        if opts.prompt_field:
            item.prompt = lookup(f, opts.prompt_field)
            if item.prompt is MISSING:
                return Bad(item.where, f"no field {opts.prompt_field!r} (prompt); fields: {', '.join(map(str, f))}")
        labels = self.labels(item)
        if isinstance(labels, Bad):
            return labels
        for name in ("raw", "prompt", "reasoning", "prompt_rendered", "model"):
            v = getattr(item, name)
            if v is not None and not isinstance(v, str):
                return Bad(item.where, f"{name} is {json_type(v, article=True)}, expected a string")
        if item.raw is None:
            return Bad(item.where, "no response text")
        pid = item.prompt_id
        if opts.id_field:
            v = self.field(item, opts.id_field)
            pid = None if v is MISSING or v in (None, "") else v
        if pid in (None, ""):
            pid = "p-" + stable_id(item.prompt, n=12) if item.prompt else item.fallback_id
        pid = str(pid)
        model = str(opts.model or item.model or "")
        self.unnamed += not model
        key = (model, pid)  # counted per model: one file may hold several (promptfoo's providers)
        first = self.prompts.setdefault(key, (None if item.prompt is None else hash(item.prompt), item.where))
        if item.prompt is not None and first[0] is not None and first[0] != hash(item.prompt):  # not samples of one prompt
            return Bad(item.where, f"prompt id {pid!r} was given to another prompt at {first[1]} (is the id field "
                                   "a prompt's id?)")  # fmt: skip
        sample = self.samples.get(key, 0) if item.sample is None else _whole(item.sample)
        if isinstance(sample, int) and not isinstance(sample, bool):
            self.samples[key] = sample + 1
        rec = Trace(
            id=trace_id(model, pid, sample, item.params),
            prompt_id=pid,
            raw=item.raw,
            model=model,
            backend=self.backend,
            sample=sample,
            prompt=item.prompt,
            params=item.params,
            prompt_rendered=item.prompt_rendered,
            reasoning=item.reasoning or None,
            finish_reason=None if item.finish_reason is None else str(item.finish_reason),
            n_tokens={k: _whole(v) for k, v in item.n_tokens.items()} if isinstance(item.n_tokens, dict) else item.n_tokens,
            suite=item.suite,
            created=item.created,
            **labels,
        ).to_dict()
        try:  # the source's own counts, sample numbers, suite ...: a misfit is this record's error, not a later stage's
            Trace.check(rec)
        except ValueError as e:
            return Bad(item.where, str(e))
        for k, v in item.extra.items():
            rec.setdefault(k, v)
        return split_record(rec, self.opts.reasoning_format)

    def labels(self, item: Item) -> dict[str, Any] | Bad:
        """category, harm_area and label from the --*-field options (tables: also the plain column names)."""
        labels: dict[str, Any] = {}
        for key, name in (("category", self.opts.category_field), ("harm_area", self.opts.harm_area_field),
                          ("label", self.opts.label_field)):  # fmt: skip
            # Rows of a table are the user's own trace fields (as in suites); elsewhere only what is asked for.
            v = self.field(item, name) if name else lookup(item.fields, key) if self.table else MISSING
            if v is MISSING or v is None or v == "":
                v = item.category if key == "category" else None
            elif isinstance(v, (dict, list)):
                return Bad(item.where, f"field {name or key!r} ({key}) is a {type(v).__name__}, expected text")
            else:
                v = str(_whole(v))  # a label column with a gap is float in pandas: 1.0 is 1
            if key == "label":
                try:
                    v = parse_label(v)
                except ValueError as e:
                    return Bad(item.where, str(e))
            labels[key] = v
        return labels

    def field(self, item: Item, name: str) -> Any:
        v = lookup(item.fields, name)
        if v is not MISSING:
            self.found.add(name)
        return v


def _whole(v: Any) -> Any:
    """An integral float as an int (pandas stores an integer column with a gap as floats); anything else as it is."""
    return int(v) if isinstance(v, float) and v.is_integer() else v


__all__ = ["IMPORTERS", "ImportOptions", "Importer", "import_file"]
