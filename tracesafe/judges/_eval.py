"""``judge-eval``: a judge's agreement with human labels (accuracy, precision, recall, F1, Cohen's kappa).

Gold formats:
- XSTest completion CSV (prompt, completion, final_label): refusal gold; ``2_full_refusal`` and
  ``3_partial_refusal`` are refusals (partial refusal counts as refusal), ``1_full_compliance`` is not.
- PyRIT scorer-eval CSV (objective, assistant_response, human_score): refusal gold when the file sits
  under a ``refusal`` folder, else harm gold (1 = the response achieves the harmful objective).
- JSONL lines ``{prompt, response, unsafe: bool}`` (harm) or ``{prompt, response, refused: bool}`` (refusal),
  optionally with ``segment`` (the item is judged as that segment, e.g. ``thinking``) and ``kind`` (a subset
  name: the metrics then add, per kind, how often the judge said yes: the false-positive rate on a safe kind,
  the recall on a harmful one).
- A built-in gold set by name (:data:`BUILTIN_GOLD`): ``contrast`` (the thinking-contrast set),
  ``blind-safe`` (safe thinking written apart from every template the offline judge was trained with),
  ``multilingual-refusal`` (answers in Spanish, French, German and Portuguese: refusals, partial refusals and
  compliance), ``multilingual-safe`` (safe thinking in those languages) or ``multilingual-thinking`` (safe thinking
  in six languages and English full of foreign words), written apart from the judges' rules and templates
  (``data/gold/SOURCE.md``).
A judge's errors are excluded from the metrics and reported as ``errors``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .._util.provenance import sha256_file
from ..store import BadLineError, read_csv_numbered, read_jsonl
from ._run import check_segments

GoldKind = Literal["harm", "refusal"]
# name -> file in tracesafe/judges/data/gold/ (docs/judges.md says how each was made)
BUILTIN_GOLD = {"contrast": "contrast.jsonl", "blind-safe": "blind_safe.jsonl",
                "multilingual-refusal": "multilingual_refusal.jsonl", "multilingual-safe": "multilingual_safe.jsonl",
                "multilingual-thinking": "multilingual_thinking.jsonl"}


@dataclass(frozen=True)
class GoldItem:
    prompt: str | None
    response: str
    label: bool
    kind: GoldKind
    segment: str | None = None
    subset: str | None = None


def gold_path(name: str | Path) -> Path:
    """A gold file's path: a built-in set's name (``contrast``) or a file."""
    if str(name) in BUILTIN_GOLD and not Path(name).exists():
        from importlib import resources

        return Path(str(resources.files("tracesafe.judges").joinpath("data", "gold", BUILTIN_GOLD[str(name)])))
    return Path(name)


def load_gold(path: str | Path) -> list[GoldItem]:
    path = gold_path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.suffix.lower() in (".jsonl", ".json"):
        return _load_jsonl(path)
    return _load_csv(path)


def _gold_item(d: dict) -> GoldItem:
    response = d.get("response")
    if not isinstance(response, str):
        raise ValueError("needs a string 'response'")
    kind = "harm" if "unsafe" in d else "refusal" if "refused" in d else None
    if kind is None:
        raise ValueError("needs a boolean 'unsafe' (harm gold) or 'refused' (refusal gold)")
    label = d["unsafe" if kind == "harm" else "refused"]
    if not isinstance(label, bool):
        raise ValueError(f"'{'unsafe' if kind == 'harm' else 'refused'}' must be true or false")
    prompt = d.get("prompt")
    segment, subset = d.get("segment"), d.get("kind")
    for key, v in (("segment", segment), ("kind", subset)):
        if v is not None and not isinstance(v, str):
            raise ValueError(f"'{key}' must be a string")
    if segment is not None:
        check_segments([segment])
    return GoldItem(prompt if isinstance(prompt, str) else None, response, label, kind, segment, subset)


def _load_jsonl(path: Path) -> list[GoldItem]:
    return [_gold_item(d) for d in read_jsonl(path, check=_gold_item)]


def _load_csv(path: Path) -> list[GoldItem]:
    rows = list(read_csv_numbered(path, skip_leading_comments=True))  # PyRIT: "# dataset_version=..."
    cols = set(rows[0][1]) if rows else set()
    items = []
    if {"completion", "final_label"} <= cols:
        for i, row in rows:
            lab = (row.get("final_label") or "").strip()
            if lab not in ("1_full_compliance", "2_full_refusal", "3_partial_refusal"):
                raise BadLineError(path, i, f"unknown final_label {lab!r}")
            items.append(GoldItem(row.get("prompt"), row["completion"], lab != "1_full_compliance", "refusal"))
    elif {"assistant_response", "human_score"} <= cols:
        kind: GoldKind = "refusal" if "refusal" in str(path.parent).lower() else "harm"
        for i, row in rows:
            score = (row.get("human_score") or "").strip()
            if score not in ("0", "1"):
                raise BadLineError(path, i, f"human_score must be 0 or 1, got {score!r}")
            items.append(GoldItem(row.get("objective"), row["assistant_response"], score == "1", kind))
    else:
        raise ValueError(f"{path}: unknown gold format (columns {sorted(cols)}); see `tracesafe judge-eval --help`")
    return items


METRICS = ("accuracy", "precision", "recall", "f1", "kappa")


def metrics(gold: list[bool], pred: list[bool]) -> dict[str, Any]:
    """Agreement of ``pred`` with ``gold``; a metric whose denominator is zero (recall on a gold set without a
    positive, kappa when both sides use one and the same label) is None, not 0."""
    tp = sum(g and p for g, p in zip(gold, pred))
    tn = sum(not g and not p for g, p in zip(gold, pred))
    fp = sum(not g and p for g, p in zip(gold, pred))
    fn = sum(g and not p for g, p in zip(gold, pred))
    n = len(gold)

    def ratio(a: float, b: float) -> float | None:
        return round(a / b, 4) if b else None

    acc = (tp + tn) / n if n else None
    pe = ((tp + fp) * (tp + fn) + (tn + fn) * (tn + fp)) / (n * n) if n else None
    kappa = (acc - pe) / (1 - pe) if n and pe < 1 else None
    return {"n": n, "accuracy": ratio(tp + tn, n), "precision": ratio(tp, tp + fp), "recall": ratio(tp, tp + fn),
            "f1": ratio(2 * tp, 2 * tp + fp + fn), "kappa": None if kappa is None else round(kappa, 4),
            "tp": tp, "fp": fp, "fn": fn, "tn": tn, **intervals(tp, fp, fn, tn, kappa)}  # fmt: skip


KAPPA_DRAWS = 2000


def intervals(tp: int, fp: int, fn: int, tn: int, kappa: float | None) -> dict[str, list[float] | None]:
    """95% intervals: accuracy by Wilson's score interval; Cohen's kappa by the 2.5th and 97.5th percentiles of kappa
    over ``KAPPA_DRAWS`` draws of the table's four cell probabilities from their posterior, Dirichlet(counts + 1/2)
    (Jeffreys' prior: an empty cell still varies, so perfect agreement on ten items is not [1, 1]), widened to hold the
    observed kappa; a fixed seed, so the same counts give the same interval. None for kappa when the gold set has one
    label (kappa says nothing there)."""
    import numpy as np
    from scipy.stats import binomtest

    n = tp + fp + fn + tn
    if not n:
        return {"accuracy_ci": None, "kappa_ci": None}
    ci = binomtest(tp + tn, n).proportion_ci(method="wilson")
    out: dict[str, list[float] | None] = {"accuracy_ci": [round(float(ci.low), 4), round(float(ci.high), 4)],
                                          "kappa_ci": None}
    if kappa is not None and tp + fn and fp + tn:
        a, b, c, d = np.random.default_rng(0).dirichlet(np.array([tp, fp, fn, tn]) + 0.5, KAPPA_DRAWS).T
        po, pe = a + d, (a + b) * (a + c) + (c + d) * (b + d)
        low, high = np.percentile((po - pe) / (1 - pe), [2.5, 97.5])
        # A posterior's percentiles can leave out an observed kappa at the edge (1 with perfect agreement): widened to it.
        out["kappa_ci"] = [round(float(min(low, kappa)), 4), round(float(max(high, kappa)), 4)]
    return out


def by_kind(items: list[GoldItem], preds: list[bool | None]) -> dict[str, dict[str, Any]]:
    """Per gold subset: n decided, its label, how many the judge flagged and the rate (false-positive rate on
    a safe subset, recall on a harmful one), with a Wilson 95% interval."""
    from scipy.stats import binomtest

    out: dict[str, dict[str, Any]] = {}
    for name in sorted({it.subset for it in items if it.subset}):
        got = [(it.label, p) for it, p in zip(items, preds) if it.subset == name and p is not None]
        labels = {g for g, _ in got}
        k, n = sum(p for _, p in got), len(got)
        ci = binomtest(k, n).proportion_ci(method="wilson") if n else None  # none without a decided item
        out[name] = {"label": "unsafe" if labels == {True} else "safe" if labels == {False} else "mixed",
                     "metric": "recall" if labels == {True} else "false_positive_rate" if labels == {False} else "flag_rate",
                     "n": n, "flagged": k, "rate": round(k / n, 4) if n else None,
                     "ci_low": round(ci.low, 4) if ci else None, "ci_high": round(ci.high, 4) if ci else None}  # fmt: skip
    return out


def evaluate_judge(
    judge: str,
    gold: str | Path,
    judge_model: str | None = None,
    backend: str | None = None,
    batch_size: int | None = None,
    segment: str = "answer",
    **options: Any,
) -> dict[str, Any]:
    """Run ``judge`` on every gold item (as the ``segment`` text, prompt as context) and compare with the
    human label: ``refused`` for refusal gold, ``unsafe`` for harm gold."""
    from ..engines.registry import EnginePool
    from ._base import JudgeItem
    from ._batch import build_judges, judge_texts

    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch size must be >= 1, not {batch_size}")
    check_segments([segment])
    items = load_gold(gold)
    if not items:
        raise ValueError(f"{gold}: no gold items")
    kinds = {it.kind for it in items}
    if len(kinds) != 1:
        raise ValueError(f"{gold}: mixes harm and refusal labels")
    kind = kinds.pop()
    engines = EnginePool()
    (j,) = build_judges([judge], judge_model, backend, engines, **options)
    batch_size = max(1, batch_size or getattr(j, "default_batch_size", 32))
    with engines:
        try:
            preds: list[bool | None] = []
            errors = 0
            error_examples: list[str] = []
            for start in range(0, len(items), batch_size):
                batch = [JudgeItem(text=it.response, prompt=it.prompt, segment=it.segment or segment)
                         for it in items[start : start + batch_size]]  # fmt: skip
                for r in judge_texts(j, batch).results:
                    value = (r.refused if kind == "refusal" else r.unsafe) if r.status == "ok" else None
                    if r.status != "ok":
                        errors += 1
                        if len(error_examples) < 3:
                            error_examples.append(r.error or "")
                    elif value is None:
                        raise ValueError(f"judge {judge!r} gives no {'refusal' if kind == 'refusal' else 'harm'} verdict")
                    preds.append(value)
        finally:
            j.close()
    pairs = [(it.label, p) for it, p in zip(items, preds) if p is not None]
    out = {"judge": judge, "judge_version": j.version, "judge_config": j.config(), "gold": str(gold),
           "gold_sha256": sha256_file(gold_path(gold)), "kind": kind, "segment": segment}  # fmt: skip
    out.update(metrics([g for g, _ in pairs], [p for _, p in pairs]))
    if any(it.subset for it in items):
        out["by_kind"] = by_kind(items, preds)
    segs = sorted({it.segment or segment for it in items})
    if len(segs) > 1 or segs != [segment]:
        out["by_segment"] = {}
        for seg in segs:
            got = [(it.label, p) for it, p in zip(items, preds) if (it.segment or segment) == seg and p is not None]
            m = metrics([g for g, _ in got], [p for _, p in got])
            out["by_segment"][seg] = {k: m[k] for k in ("tp", "fn", "tn", "fp")}
    out["errors"] = errors
    out["n_gold"] = len(items)
    if error_examples:
        out["error_examples"] = error_examples
    return out
