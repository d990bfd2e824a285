"""garak report JSONL (``garak_runs/*.report.jsonl``). Each ``attempt`` entry is one prompt sent by a probe, its
``outputs`` the generations (one trace each); an attempt is logged when generated (status 1) and again when the
detectors have scored it (status 2): the scored entry is imported, the other only when the run stopped before
scoring. The model is the run's ``plugins.target_name`` (older: ``model_name``), else its generator type; the
category is the probe (``--category-field`` overrides; ``goal`` and ``notes`` are fields too). garak keeps the
thinking in the output unless the generator's ``skip_seq_start``/``skip_seq_end`` removed it."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..store import read_jsonl_numbered
from ._base import IMPORTERS, Bad, Importer, ImportOptions, Item, text_of

log = logging.getLogger(__name__)


def read(path: Path, opts: ImportOptions) -> Iterator[Item | Bad]:
    model = ""
    pending: dict[str, tuple[int, dict[str, Any]]] = {}  # generated, not yet scored: uuid -> (line, entry)
    failed = lines = typed = 0
    for lineno, entry in read_jsonl_numbered(path, on_bad_line=opts.on_bad_line):
        kind = entry.get("entry_type")
        lines += 1
        typed += kind is not None
        if kind == "start_run setup":
            model = str(
                entry.get("plugins.target_name") or entry.get("plugins.model_name")
                or entry.get("plugins.target_type") or entry.get("plugins.model_type") or ""
            )  # fmt: skip
        elif kind == "attempt":
            if entry.get("uuid") is None:  # garak gives every attempt one; without it two attempts cannot be told apart
                yield Bad(f"{path}:{lineno}", "attempt has no 'uuid'")
                continue
            uuid = str(entry["uuid"])
            if entry.get("status") == 1:
                pending[uuid] = (lineno, entry)
                continue
            pending.pop(uuid, None)
            items, n_failed = _items(f"{path}:{lineno}", entry, model)
            failed += n_failed
            yield from items
    if lines and not typed:  # every line of a report has one: this is another file (a hitlog, traces)
        raise ValueError(f"{path}: not a garak report: no line has an 'entry_type' (a hitlog or another JSONL file? "
                         "`tracesafe import jsonl` reads a table of traces)")
    for lineno, entry in pending.values():
        items, n_failed = _items(f"{path}:{lineno}", entry, model)
        failed += n_failed
        yield from items
    if failed:
        log.warning("%s: %d output(s) are empty (failed generations), none imported", path, failed)


def _items(where: str, attempt: dict[str, Any], model: str) -> tuple[list[Item | Bad], int]:
    outputs = attempt.get("outputs")
    if not isinstance(outputs, list):
        return [Bad(where, "attempt without an 'outputs' list")], 0
    prompt = _prompt(attempt.get("prompt"))
    if prompt is None:
        return [Bad(where, "attempt prompt is neither text nor a conversation")], 0
    probe = attempt.get("probe_classname")
    detectors = attempt.get("detector_results") if isinstance(attempt.get("detector_results"), dict) else {}
    items: list[Item | Bad] = []
    failed = 0
    for i, output in enumerate(outputs):
        text = output.get("text") if isinstance(output, dict) else output  # older reports: plain strings
        if text is None:
            failed += 1
            continue
        scores = {d: s[i] for d, s in detectors.items() if isinstance(s, list) and i < len(s)}
        info = {"probe": probe, "uuid": attempt.get("uuid"), "seq": attempt.get("seq"), "goal": attempt.get("goal"),
                "detector_results": scores}  # fmt: skip
        items.append(
            Item(
                where=f"{where}: output {i}" if len(outputs) > 1 else where,
                fields=attempt,
                raw=text,
                model=model,
                prompt=prompt,
                fallback_id=str(attempt.get("uuid")),
                category=probe,
                extra={"garak": info},
            )
        )
    return items, failed


def _prompt(prompt: Any) -> str | None:
    """The prompt text: a string (older reports) or the last user turn of a conversation."""
    if isinstance(prompt, str):
        return prompt
    turns = prompt.get("turns") if isinstance(prompt, dict) else None
    for turn in reversed(turns if isinstance(turns, list) else []):
        if isinstance(turn, dict) and turn.get("role") == "user":
            content = turn.get("content")
            return content.get("text") if isinstance(content, dict) else text_of(content)
    return None


IMPORTERS.add("garak", Importer(read, "garak report .jsonl"))
