"""Rewards over trace files: prompt labels in, one reward record per trace out (atomically), and their summary."""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

from .alphaalign import (
    REWARD_SCHEMA,
    HelpfulnessScorer,
    RefusalDetector,
    RewardParams,
    is_harmful,
    paper_refusal,
    score,
)


def load_labels(source: str | os.PathLike) -> dict[str, str]:
    """prompt_id -> harmful/benign from a built-in suite name, a suite file (a prompt text column: the prompt ids
    are the suite's, as ``generate`` gives them) or a JSONL/CSV of ``prompt_id`` (or ``id``) and ``label``. Two
    labels for one prompt id are refused (FILE:LINE)."""
    from .._util.fields import PROMPT_FIELDS
    from ..suites import BUILTIN, _label, load_suite
    from ..suites.rows import read_rows

    name = str(source)
    if name in BUILTIN:
        return {p.id: p.label for p in load_suite(name) if p.label}
    path = Path(name)
    if not path.exists():
        raise FileNotFoundError(f"{name}: no such file, and not a built-in suite ({', '.join(BUILTIN)})")
    rows = read_rows(path)
    if rows and "prompt_id" not in rows[0][1] and any(str(k).strip().lower() in PROMPT_FIELDS for k in rows[0][1]):
        return {p.id: p.label for p in load_suite(path) if p.label}
    labels: dict[str, str] = {}
    for lineno, row in rows:
        pid = row.get("prompt_id", row.get("id"))
        if pid in (None, "") or "label" not in row:
            raise ValueError(f"{path}:{lineno}: needs a prompt_id (or id) and a label, or a prompt text column "
                             f"({'/'.join(PROMPT_FIELDS)}) of a suite file")  # fmt: skip
        lab = _label(row["label"], path, lineno)
        if lab is not None:
            if labels.get(str(pid), lab) != lab:
                raise ValueError(f"{path}:{lineno}: prompt {pid} is labelled {lab}, but {labels[str(pid)]} on an "
                                 "earlier line")  # fmt: skip
            labels[str(pid)] = lab
    return labels


def reward_file(
    traces: str | os.PathLike,
    output: str | os.PathLike,
    *,
    labels: dict[str, str] | None = None,
    params: RewardParams = RewardParams(),
    refusal_detector: RefusalDetector | None = None,
    helpfulness_scorer: HelpfulnessScorer | None = None,
    on_bad_line: Literal["error", "skip"] = "error",
) -> Counter:
    """Score every trace of a Trace JSONL; write one reward record per trace (atomically).

    The label comes from ``labels`` (prompt_id -> label) where it has the prompt, else from the trace's
    own ``label``. A trace without a label, text or (for a helpfulness scorer) prompt gets a record
    with ``status: error``; it is never scored as either class. Rollouts of one prompt (same
    ``prompt_id`` and ``model``) form the R_h normalisation group. A trace id given twice is scored once
    (``duplicate`` counts the rest; with another model or text it is refused). The output is locked from the
    start, so a second writer fails before any scoring. Returns counts: ok, error, duplicate, and
    ``labelled_by_file`` (traces whose prompt ``labels`` has).
    """
    from ..store import output_lock, prepare_output

    # Checked and locked before the scoring, not after it: a second writer fails at once.
    prepare_output(Path(output), [traces])
    with output_lock(output):
        return _reward_file(traces, output, labels, params, refusal_detector, helpfulness_scorer, on_bad_line)


def _reward_file(traces, output, labels, params, refusal_detector, helpfulness_scorer, on_bad_line) -> Counter:
    from ..records import Trace
    from ..store import SeenIds, read_jsonl_numbered, write_jsonl

    detect = refusal_detector or paper_refusal
    detector_name = getattr(detect, "detector_name", getattr(detect, "__name__", type(detect).__name__))
    base = {"schema": REWARD_SCHEMA, "refusal_detector": detector_name, "params": asdict(params)}
    if helpfulness_scorer is not None:
        base["helpfulness_scorer"] = getattr(helpfulness_scorer, "name", type(helpfulness_scorer).__name__)
    records: list[dict[str, Any]] = []
    todo: list[tuple[int, dict[str, Any], str]] = []
    seen = SeenIds()  # one reward per trace, as `judge` gives one verdict per trace and segment
    counts: Counter = Counter()
    for lineno, rec in read_jsonl_numbered(traces, on_bad_line=on_bad_line, check=Trace.check):
        if rec.get("id") is not None and not seen.add(rec, str(traces), lineno):
            counts["duplicate"] += 1
            continue
        if labels and str(rec.get("prompt_id")) in labels:
            counts["labelled_by_file"] += 1
        label = (labels or {}).get(str(rec.get("prompt_id")), rec.get("label"))
        head = {**base, "trace_id": rec.get("id"), "prompt_id": rec.get("prompt_id"), "model": rec.get("model"),
                "sample": rec.get("sample"), "label": label}  # fmt: skip
        error = None
        if not isinstance(rec.get("raw"), str):
            error = "trace has no string field 'raw'"
        elif label is None:
            error = "no label for this prompt (give --labels FILE mapping prompt_id to harmful/benign)"
        else:
            try:
                label = "harmful" if is_harmful(label) else "benign"
                head["label"] = label
            except ValueError as e:
                error = str(e)
        if error is None and helpfulness_scorer is not None and label == "benign" and not rec.get("prompt"):
            error = "trace has no 'prompt' text for the helpfulness scorer"
        records.append({**head, "status": "error" if error else "ok", "error": error})
        if error is None:
            todo.append((len(records) - 1, rec, label))
    parts = score(
        [r["raw"] for _, r, _ in todo],
        [lab for _, _, lab in todo],
        groups=[(r.get("model"), r.get("prompt_id")) for _, r, _ in todo],
        prompts=[r.get("prompt") or "" for _, r, _ in todo],
        reasonings=[r.get("reasoning") for _, r, _ in todo],
        prompts_rendered=[r.get("prompt_rendered") for _, r, _ in todo],
        params=params,
        refusal_detector=detect,
        helpfulness_scorer=helpfulness_scorer,
    )
    for (i, _, _), p in zip(todo, parts):
        records[i].update(asdict(p))
    write_jsonl(output, records, inputs=[traces], lock=False)  # reward_file holds the lock
    counts.update(r["status"] for r in records)
    return counts


def summarise(records: Iterable[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean reward and component rates by label, over the ok records."""
    acc: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        if r.get("status") == "ok":
            acc[r["label"]].append(r)
    out = {}
    for label, rs in sorted(acc.items()):
        k = len(rs)
        out[label] = {
            "n": k,
            "reward": sum(r["reward"] for r in rs) / k,
            "v_format": sum(r["v_format"] for r in rs) / k,
            "refused": sum(r["refused"] for r in rs) / k,
        }
    return out
