"""Published numbers beside ours: ``comparison.csv`` and a report section from a run's tables and a published table.

A published table (``scripts/data/published/*.csv``) has one row per published cell:

    paper, arxiv, version, table, cell, run, model, suite, segment, metric, value, status, note

``run`` names the run directory (the config's stem), ``model`` the config's ``[[models]]`` name, ``value`` the
paper's number as a proportion (0-1), ``status`` ``read`` (value transcribed from the cited table and cell),
``unread`` (the cell exists but its number could not be read: no value is guessed) or ``not_published``.

Ours comes from the run's report tables (report/tables/*.csv), so the numbers and intervals are the report's:
Wilson 95% intervals for rates (``analysis.wilson_ci``), the report's normal interval over prompts for Safe@1.
Metrics: ``unsafe_rate``, ``safe_rate`` (1 - unsafe), ``attack_success_rate`` (unsafe answers to attack
prompts), ``refusal_rate``, ``over_refusal_rate``, ``hidden_risk_rate`` (unsafe thinking behind a safe answer),
``safe_at_1``, ``safe_at_k``, ``cons_safe_at_k``.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from . import analysis as A

PUBLISHED_COLUMNS = ["paper", "arxiv", "version", "table", "cell", "run", "model", "suite", "segment", "metric",
                     "value", "status", "note"]  # fmt: skip
COMPARISON_COLUMNS = ["paper", "version", "table", "cell", "run", "model", "suite", "segment", "metric", "published",
                      "ours", "ci_low", "ci_high", "k", "n", "judge", "grade", "inside_ci", "status", "note"]  # fmt: skip
STATUSES = ("read", "unread", "not_published")
RATE_METRICS = {"unsafe_rate", "safe_rate", "attack_success_rate"}
AT_K = {"safe_at_1", "safe_at_k", "cons_safe_at_k"}
METRICS = RATE_METRICS | AT_K | {"refusal_rate", "over_refusal_rate", "hidden_risk_rate"}


def load_published(path: str | Path) -> pd.DataFrame:
    """Read and check a published table; a bad row is ``FILE:LINE: reason``."""
    from .store import read_csv_numbered

    path = Path(path)
    rows = []
    for lineno, row in read_csv_numbered(path, skip_leading_comments=True):
        missing = [c for c in PUBLISHED_COLUMNS if c not in row]
        if missing:
            raise ValueError(f"{path}:{lineno}: missing column(s) {', '.join(missing)}")
        if row["status"] not in STATUSES:
            raise ValueError(f"{path}:{lineno}: status {row['status']!r} is not one of {', '.join(STATUSES)}")
        if row["metric"] not in METRICS:
            raise ValueError(f"{path}:{lineno}: metric {row['metric']!r} is not one of {', '.join(sorted(METRICS))}")
        if row["status"] == "read":
            try:
                v = float(row["value"])
            except ValueError:
                raise ValueError(f"{path}:{lineno}: status read needs a number in value, got {row['value']!r}") from None
            if not 0 <= v <= 1:
                raise ValueError(f"{path}:{lineno}: value {v} is not a proportion in [0, 1]")
        elif row["value"].strip():
            raise ValueError(f"{path}:{lineno}: a value with status {row['status']!r}: mark it read, or leave it empty")
        rows.append(row)
    return pd.DataFrame(rows, columns=PUBLISHED_COLUMNS)


def _model_ids(run_dir: Path) -> dict[str, str]:
    """Config model name -> the model string the traces carry (manifest.json)."""
    mf = run_dir / "manifest.json"
    if not mf.exists():
        return {}
    models = json.loads(mf.read_text()).get("models", {})
    return {label: str(m.get("config", {}).get("model", label)) for label, m in models.items()}


def _tables(run_dir: Path) -> dict[str, pd.DataFrame]:
    out = {}
    for name in ("summary", "refusal", "at_k", "paired"):
        f = run_dir / "report" / "tables" / f"{name}.csv"
        out[name] = pd.read_csv(f, dtype={"model": str, "suite": str, "segment": str, "judge": str}) if f.exists() else pd.DataFrame()
    return out


def _first(df: pd.DataFrame, judge: str | None, fallback: bool = False, **match) -> pd.Series | None:
    """The first row of ``df`` whose columns equal ``match``, for ``judge`` or else (no judge given, or with
    ``fallback`` one absent from these rows) for the first validated judge: screening-grade ones, as the tables'
    ``grade`` column states, only when there is no other. None when no row matches."""
    if df.empty:
        return None
    for col, v in match.items():
        df = df[df[col] == v]
    if judge is not None and (not fallback or judge in set(df["judge"])):
        df = df[df["judge"] == judge]
    elif not df.empty:
        df = df.sort_values(["grade", "judge"], key=lambda c: c.eq("screening") if c.name == "grade" else c, kind="stable")
    return None if df.empty else df.iloc[0]


def _ours(t: dict[str, pd.DataFrame], metric: str, model: str, suite: str, segment: str, judge: str | None):
    """(rate, ci_low, ci_high, k, n, judge, grade) for one cell, or None when the run has no such row."""
    cell = {"model": model, "suite": suite, "segment": segment or "answer"}
    if metric in RATE_METRICS:
        r = _first(t["summary"], judge, **cell)
        if r is None:
            return None
        k, n = int(r["unsafe"]), int(r["n"])
        if metric == "safe_rate":
            k = n - k
    elif metric in ("refusal_rate", "over_refusal_rate"):
        r = _first(t["refusal"], judge, fallback=True, **cell, metric=metric)
        if r is None:
            return None
        k, n = int(r["refused"]), int(r["n"])
    elif metric == "hidden_risk_rate":
        r = _first(t["paired"], judge, model=model)
        if r is None:
            return None
        k, n = int(r["thinking_only"]), int(r["n"])
    else:  # Safe@1 / Safe@K / ConsSafe@K: the report's own estimate and interval
        r = _first(t["at_k"], judge, **cell)
        if r is None:
            return None
        n = int(r["n_prompts"])
        k = int(round(float(r[metric]) * n)) if metric != "safe_at_1" and n else np.nan
        return (float(r[metric]), float(r[f"{metric}_ci_low"]), float(r[f"{metric}_ci_high"]), k, n, str(r["judge"]),
                str(r["grade"]))  # fmt: skip
    lo, hi = A.wilson_ci(k, n)
    return (k / n if n else np.nan), lo, hi, k, n, str(r["judge"]), str(r["grade"])


def compare(published: pd.DataFrame, run_dirs: dict[str, Path], judge: str | None = None) -> pd.DataFrame:
    """One row per published cell: the paper's number, ours with its 95% CI, and whether the CI holds the paper's."""
    tables = {name: _tables(Path(d)) for name, d in run_dirs.items()}
    ids = {name: _model_ids(Path(d)) for name, d in run_dirs.items()}
    rows = []
    for c in published.itertuples(index=False):
        pub = float(c.value) if c.status == "read" else np.nan
        found = None
        if c.run in tables:
            found = _ours(tables[c.run], c.metric, ids[c.run].get(c.model, c.model), c.suite, c.segment, judge)
        ours, lo, hi, k, n, used, grade = found if found else (np.nan, np.nan, np.nan, np.nan, np.nan, "", "")
        if c.status != "read":
            status = "published value unread" if c.status == "unread" else "not published"
            inside = ""
        elif found is None:
            status, inside = "not in our run", ""
        elif np.isnan(lo):
            status, inside = "no interval", ""
        else:
            status, inside = "compared", "yes" if lo <= pub <= hi else "no"
        rows.append([c.paper, c.version, c.table, c.cell, c.run, c.model, c.suite, c.segment, c.metric, pub, ours,
                     lo, hi, k, n, used, grade, inside, status, c.note])
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)


def write_comparison(df: pd.DataFrame, out: Path, title: str, unverified: list[str] = ()) -> Path:
    """``OUT/comparison.csv`` and ``OUT/comparison.md``/``.html`` (the section alone); returns the CSV path."""
    from .report import csv_safe

    out.mkdir(parents=True, exist_ok=True)
    csv_safe(df).to_csv(out / "comparison.csv", index=False, quoting=csv.QUOTE_MINIMAL)
    doc = section(df, title, unverified)
    (out / "comparison.md").write_text(doc.to_md(out), encoding="utf-8")
    (out / "comparison.html").write_text(doc.to_html(), encoding="utf-8")
    return out / "comparison.csv"


def section(df: pd.DataFrame, title: str, unverified: list[str] = ()):
    """The report section: a Doc (report.py's Markdown/HTML blocks) holding the comparison table."""
    from .report import Doc, ci, judge_disp, pct

    doc = Doc(title)
    counts = df["status"].value_counts().to_dict()
    inside = int((df["inside_ci"] == "yes").sum())
    doc.p(f"{len(df)} published cells: {counts.get('compared', 0)} compared (the paper's number inside our 95% CI in "
          f"{inside}), {counts.get('published value unread', 0)} whose published value could not be read, "
          f"{counts.get('not published', 0)} that the paper does not publish, "
          f"{counts.get('not in our run', 0)} that this run does not cover. Intervals: Wilson 95% for rates, the "
          "report's normal interval over prompts for Safe@1. A cell is comparable only with the paper's prompts, "
          "models, decoding and judge; the judge used is named per row.")
    if unverified:
        doc.note("Unverified against the paper: " + " ".join(unverified))
    if (df["grade"] == "screening").any():
        doc.note("Some of our numbers come from a screening-grade judge: not comparable with the paper's.")
    doc.table(pd.DataFrame({
        "cell": [", ".join(x for x in (t, c) if x) for t, c in zip(df["table"], df["cell"])],
        "run · model": [f"{r} · {m}" for r, m in zip(df["run"], df["model"])],
        "suite": df["suite"], "segment": df["segment"], "metric": df["metric"],
        "paper": df["published"].map(pct),
        "ours (95% CI)": [f"{pct(o)} {ci(lo, hi)}".strip() for o, lo, hi in zip(df["ours"], df["ci_low"], df["ci_high"])],
        "judge": [judge_disp(j, g) if j else "" for j, g in zip(df["judge"], df["grade"])],
        "paper inside CI": df["inside_ci"].replace("", "–"), "status": df["status"],
    }), "comparison.csv: every published cell, the paper's number, ours and our 95% CI.")
    return doc


_BODY = re.compile(r"<body>\n(.*)\n</body>", re.S)
MARK = "<!-- tracesafe:comparison -->"  # where an earlier comparison section starts (a rerun replaces it)


def append_to_report(report_dir: Path, doc) -> None:
    """Add the section to an existing report.md and report.html (the report module stays untouched)."""
    md_path, html_path = report_dir / "report.md", report_dir / "report.html"
    section_md = doc.to_md(report_dir).replace("# ", "## ", 1)
    text = md_path.read_text(encoding="utf-8").split(MARK)[0].rstrip("\n")
    md_path.write_text(f"{text}\n\n{MARK}\n{section_md}", encoding="utf-8")
    body = _BODY.search(doc.to_html()).group(1).replace("<h1>", "<h2>", 1).replace("</h1>", "</h2>", 1)
    page = html_path.read_text(encoding="utf-8")
    head, _, _ = page.partition(MARK)
    if head == page:  # no earlier section
        head = page.rsplit("\n</body>", 1)[0]
    html_path.write_text(f"{head.rstrip()}\n{MARK}\n{body}\n</body></html>\n", encoding="utf-8")
