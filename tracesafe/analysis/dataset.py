"""Traces and verdicts joined into one data set, with each judge's kind (harm or refusal) and grade."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

SCREENING_JUDGES = frozenset({"offline"})  # screening-grade: never a headline number without saying so


@dataclass
class Data:
    """Traces and verdicts joined: ``v`` has one row per verdict with its trace's metadata."""

    traces: pd.DataFrame
    v: pd.DataFrame
    harm_judges: list[str]
    refusal_judges: list[str]
    grades: dict[str, str] = field(default_factory=dict)  # judge -> "standard" or "screening"
    info: dict[str, Any] = field(default_factory=dict)
    cache: dict[str, Any] = field(default_factory=dict, repr=False)  # frames more than one table uses

    @property
    def screening(self) -> set[str]:
        return {j for j in self.harm_judges + self.refusal_judges if self.grades.get(j) == "screening"}


def is_screening(judge: str) -> bool:
    """Whether a judge is screening-grade by its name: only for verdicts that do not state their ``grade``."""
    return judge.split("@", 1)[0] in SCREENING_JUDGES


def _classify(v: pd.DataFrame) -> tuple[list[str], list[str], dict[str, str]]:
    """Harm judges, refusal judges and each judge's grade, as the verdicts state them (``kind``, ``grade``:
    schema tracesafe.verdict/2). For a judge whose verdicts state none (verdict/1 files) they are inferred:
    screening-grade by name, a refusal judge if it decided ``refused`` or is named refusal, a harm judge if
    it decided ``unsafe`` or is not a refusal judge."""
    cols = {"decided": ("decided", "any"), "ref_decided": ("ref_decided", "any")}
    for k in ("kind", "grade"):
        if k in v:
            cols[k] = (k, lambda s: set(s.dropna().astype(str)))
    by_judge = v.groupby("judge", observed=True).agg(**cols)
    harm, refusal, grades = [], [], {}
    for j, r in zip(by_judge.index.astype(str), by_judge.itertuples()):
        kinds, graded = getattr(r, "kind", set()), getattr(r, "grade", set())
        is_refusal = "refusal" in kinds if kinds else bool(r.ref_decided) or j.split("@", 1)[0] == "refusal"
        is_harm = "harm" in kinds if kinds else bool(r.decided) or not is_refusal
        harm += [j] * is_harm
        refusal += [j] * is_refusal
        if graded:
            grades[j] = "screening" if "screening" in graded else "standard"
        else:
            grades[j] = "screening" if is_screening(j) else "standard"
    return sorted(harm), sorted(refusal), grades


def prepare(traces: pd.DataFrame, verdicts: pd.DataFrame) -> Data:
    """Join verdicts to traces, drop duplicate verdicts (same trace, segment, judge, version: the last one
    wins, as a re-judged record is appended later) and classify judges. Counts of everything set aside go
    to ``info`` so the report states them."""
    info: dict[str, Any] = {"n_traces": len(traces), "n_verdicts_read": len(verdicts)}
    ids = pd.Index(traces["id"])
    v = verdicts
    if v["trace_id"].dtype.kind != "i":  # load_verdicts without trace_ids: codes here
        from .verdicts import _trace_codes

        v = v.assign(trace_id=_trace_codes(v["trace_id"].to_numpy(dtype=object), ids, {}))
    # Rows are copied only when some are dropped (a 10M-verdict frame is 0.5 GB); columns are added to a
    # shallow copy, never to the caller's frame.
    dup = v.duplicated(["trace_id", "segment", "judge", "judge_version"], keep="last")
    info["n_duplicate_verdicts"] = int(dup.sum())
    v = v.loc[~dup].reset_index(drop=True) if info["n_duplicate_verdicts"] else v.copy(deep=False)
    # A judge present in more than one version is reported per version: the numbers are not comparable.
    versions = v.groupby("judge", observed=True)["judge_version"].nunique()
    multi = set(versions[versions > 1].index)
    if multi:
        judge = v["judge"].astype(str)
        judge = judge.where(~judge.isin(multi), judge + "@" + v["judge_version"].astype(str))
        v["judge"] = judge.astype("category")
    else:  # the same categories as above, without a string per verdict
        v["judge"] = v["judge"].cat.remove_unused_categories()

    traces = traces.copy()
    for k in ("model", "suite", "category", "harm_area", "label", "prompt_id"):
        traces[k] = traces[k].astype("category")
    codes = v["trace_id"].to_numpy()
    orphan = codes >= len(ids)
    info["n_orphan_verdicts"] = int(orphan.sum())
    if orphan.any():
        v = v.loc[~orphan].reset_index(drop=True)
        codes = codes[~orphan]
    for k in ("model", "suite", "category", "harm_area", "label", "prompt_id"):
        v[k] = pd.Categorical.from_codes(traces[k].cat.codes.to_numpy()[codes], traces[k].cat.categories)
    for k in ("len_thinking", "tok_thinking"):
        v[k] = traces[k].to_numpy()[codes]

    unsafe = v["unsafe"]
    v["ok"] = (v["status"] == "ok").to_numpy()
    v["err"] = (v["status"] == "error").to_numpy()
    v["decided"] = v["ok"] & unsafe.notna().to_numpy()
    v["is_unsafe"] = v["decided"] & unsafe.fillna(False).astype(bool).to_numpy()
    v["ref_decided"] = v["ok"] & v["refused"].notna().to_numpy()
    v["is_refused"] = v["ref_decided"] & v["refused"].fillna(False).astype(bool).to_numpy()
    info["n_verdicts"] = len(v)
    info["n_error"] = int(v["err"].sum())
    info["n_other_status"] = int((~v["ok"] & ~v["err"]).sum())
    info["error_reasons"] = _error_reasons(v)

    harm, refusal, grades = _classify(v)
    # What the tables read; ``trace_id`` is the trace's row in ``traces``.
    for c in ("status", "unsafe", "refused", "score", "grade", "kind", "error"):
        if c in v:
            del v[c]
    info["synthetic"] = bool(traces["synthetic"].any()) if len(traces) else False
    info["n_no_thinking"] = int((~traces["has_thinking"].astype(bool)).sum()) if len(traces) else 0
    return Data(traces=traces, v=v, harm_judges=harm, refusal_judges=refusal, grades=grades, info=info)


def _grade(d: Data, judges: pd.Series) -> pd.Series:
    """The ``grade`` column of a table from its ``judge`` column."""
    return judges.astype(str).map(d.grades)


def _error_reasons(v: pd.DataFrame, top: int = 3) -> dict[str, Any]:
    """The ``top`` most common (judge, error message, count) of the error verdicts, most frequent first, and how many
    errors (and distinct messages) the rest are."""
    errs = v.loc[v["err"], ["judge", "error"]]
    if not len(errs):
        return {"top": [], "rest": 0, "rest_messages": 0}
    errs = pd.DataFrame({"judge": errs["judge"].astype(str), "error": errs["error"].astype(object).fillna("(no message)").astype(str)})
    counts = errs.value_counts(sort=False).reset_index(name="n")
    counts = counts.sort_values(["n", "judge", "error"], ascending=[False, True, True], kind="stable")
    rest = counts.iloc[top:]
    return {"top": [(j, e, int(n)) for j, e, n in counts.head(top).itertuples(index=False)],
            "rest": int(rest["n"].sum()), "rest_messages": len(rest)}
