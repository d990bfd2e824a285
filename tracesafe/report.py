"""`tracesafe report` / `tracesafe compare`: tables (CSV + Parquet), figures (PNG + SVG), report.md and one
self-contained report.html (figures embedded as base64; opens offline).

The report never prints prompt or trace texts: only ids, counts and rates.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import analysis as A
from .store import atomic_output

SCREENING_NOTE = (
    "Verdicts from the `offline` judge are **screening-grade**: a fast local classifier meant to triage, not "
    "a validated safety judge. Every number from it is marked ‡ or *(screening-grade)*; do not report it as a "
    "finding without a validated judge (Llama Guard, WildGuard, HarmBench classifier or the rubric judge)."
)
MARK = " ‡"
SYNTHETIC_NOTE = (
    "These traces are **SYNTHETIC** (marked `synthetic` or from a `synthetic/` model): the numbers below "
    "illustrate the report and are **not findings** about any real model."
)


# ---------------------------------------------------------------- formatting


def _dec(x: float) -> str:
    # One decimal, but never print a non-zero bound as 0.0 (a Wilson upper bound at 0/n is small, not zero).
    return f"{x:.1f}" if x == 0 or abs(x) >= 0.1 else f"{x:.2g}"


def pct(x) -> str:
    return "–" if x is None or pd.isna(x) else f"{_dec(100 * float(x))}%"


def ci(lo, hi) -> str:
    if lo is None or pd.isna(lo) or pd.isna(hi):
        return ""
    return f"[{_dec(100 * float(lo))}, {_dec(100 * float(hi))}]"


def _marks(judges: pd.Series) -> list[str]:
    return [MARK if A.is_screening(str(j)) else "" for j in judges]


def pval(p) -> str:
    if p is None or pd.isna(p):
        return "–"
    p = float(p)
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def judge_disp(j: str) -> str:
    return f"{j} (screening-grade)" if A.is_screening(str(j)) else str(j)


def num(x) -> str:
    if x is None or pd.isna(x):
        return "–"
    return f"{int(x):,}"


# ---------------------------------------------------------------- escaping

_SPACE = re.compile(r"\s+")  # newlines and every other Unicode space or line separator
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_MD_PUNCT = re.compile(r"([\\`*_\[\]|~$#])")
_LIST_MARKER = re.compile(r"(?:[+-]|\d{1,9}[.)])(?= |$)")  # opens a nested list at the start of a list item


def one_line(text) -> str:
    """``text`` on one line: whitespace runs (newlines included) become one space, control characters U+FFFD."""
    return _CONTROL.sub("\ufffd", _SPACE.sub(" ", str(text)))


def md(text) -> str:
    """A user-supplied string (model, judge, suite, category, run, file name, title) as Markdown that renders
    as exactly that text on one line: HTML (``<script>``, ``<img onerror>``) as entities, Markdown markup
    (links, emphasis, code, table pipes, ``$`` math, headings, list markers) backslash-escaped. Every such
    string goes into report.md through here; ``_inline`` renders the result to HTML."""
    s = one_line(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    s = _MD_PUNCT.sub(r"\\\1", s)
    m = _LIST_MARKER.match(s)
    return s if m is None else f"{s[: m.end() - 1]}\\{s[m.end() - 1:]}"


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")  # and full-width forms


def csv_safe(df: pd.DataFrame) -> pd.DataFrame:
    """Text cells that a spreadsheet would run as a formula (starting with = + - @, tab or CR) get a leading
    single quote, as OWASP's CSV-injection guidance says; numbers are untouched."""
    out = df.copy()
    for c in out.columns:
        if out[c].dtype == object or isinstance(out[c].dtype, (pd.CategoricalDtype, pd.StringDtype)):
            out[c] = out[c].map(lambda v: "'" + v if isinstance(v, str) and v.startswith(_FORMULA_START) else v)
    return out


# ---------------------------------------------------------------- document model


@dataclass
class Doc:
    """Blocks rendered both to Markdown and to HTML, so the two never disagree."""

    title: str
    blocks: list[tuple] = field(default_factory=list)

    def h(self, text: str, level: int = 2):
        self.blocks.append(("h", level, text))

    def p(self, text: str):
        self.blocks.append(("p", text))

    def note(self, text: str):
        self.blocks.append(("note", text))

    def ul(self, items: list[str]):
        if items:
            self.blocks.append(("ul", items))

    def table(self, df: pd.DataFrame, caption: str = ""):
        if not df.empty:
            self.blocks.append(("table", df, caption))

    def figure(self, png: Path | None, caption: str):
        if png is not None:
            self.blocks.append(("figure", png, caption))

    def to_md(self, base: Path) -> str:
        out = [f"# {md(self.title)}", ""]
        for b in self.blocks:
            kind = b[0]
            if kind == "h":
                out += ["#" * b[1] + " " + b[2], ""]
            elif kind == "p":
                out += [b[1], ""]
            elif kind == "note":
                out += ["> " + b[1], ""]
            elif kind == "ul":
                out += [f"- {i}" for i in b[1]] + [""]
            elif kind == "table":
                df, cap = b[1], b[2]
                if cap:
                    out += [f"*{cap}*", ""]
                cols = [md(c) for c in df.columns]
                out.append("| " + " | ".join(cols) + " |")
                out.append("|" + "|".join("---" for _ in cols) + "|")
                for row in df.itertuples(index=False):
                    out.append("| " + " | ".join(_md_cell(v) for v in row) + " |")
                out.append("")
            elif kind == "figure":
                rel = b[1].relative_to(base).as_posix()
                out += [f"![{b[2]}]({rel})", "", f"*{b[2]}* (vector: `{rel[:-4]}.svg`)", ""]
        return "\n".join(out)

    def to_html(self) -> str:
        parts = [f"<h1>{html.escape(one_line(self.title))}</h1>"]
        for b in self.blocks:
            kind = b[0]
            if kind == "h":
                parts.append(f"<h{b[1]}>{_inline(b[2])}</h{b[1]}>")
            elif kind == "p":
                parts.append(f"<p>{_inline(b[1])}</p>")
            elif kind == "note":
                parts.append(f'<div class="note">{_inline(b[1])}</div>')
            elif kind == "ul":
                parts.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in b[1]) + "</ul>")
            elif kind == "table":
                df, cap = b[1], b[2]
                rows = ["<tr>" + "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns) + "</tr>"]
                for row in df.itertuples(index=False):
                    rows.append("<tr>" + "".join(f"<td>{_inline(_md_cell(v))}</td>" for v in row) + "</tr>")
                capt = f"<caption>{_inline(cap)}</caption>" if cap else ""
                parts.append(f'<div class="tw"><table>{capt}{"".join(rows)}</table></div>')
            elif kind == "figure":
                data = base64.b64encode(b[1].read_bytes()).decode()
                alt = re.sub(r"<[^>]+>", "", _inline(b[2]))
                parts.append(f'<figure><img alt="{alt}" src="data:image/png;base64,{data}">'
                             f"<figcaption>{_inline(b[2])}</figcaption></figure>")
        body = "\n".join(parts)
        return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                f"<title>{html.escape(one_line(self.title))}</title><style>{_CSS}</style></head>\n<body>\n{body}\n</body></html>\n")


_CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#111;line-height:1.45}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0 1.2em}th,td{border:1px solid #bbb;padding:.25em .5em;
text-align:left;vertical-align:top}th{background:#eee}tr:nth-child(even) td{background:#f7f7f7}
caption{caption-side:top;text-align:left;font-style:italic;padding-bottom:.3em}.tw{overflow-x:auto}
.note{border-left:4px solid #E69F00;background:#fff8e6;padding:.5em 1em;margin:1em 0}
figure{margin:1em 0}img{max-width:100%;height:auto}figcaption{font-style:italic;font-size:.9em}
code{background:#f0f0f0;padding:0 .2em}
@media print{.note{background:none}body{max-width:none}}
"""


def _md_cell(v) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "–"
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.3g}"
    return md(v)


_ESCAPED = re.compile(r"\\([!-/:-@\[-`{-~])|&(?:amp|lt|gt);")


def _inline(text: str) -> str:
    """The Markdown of report.md (code, bold, italics, backslash escapes and entities from ``md``) as HTML."""
    held: list[str] = []

    def hold(m: re.Match) -> str:  # escaped characters are text, never markup
        held.append(html.escape(m.group(1) if m.group(1) is not None else html.unescape(m.group(0))))
        return f"\x00{len(held) - 1}\x00"

    s = html.escape(_ESCAPED.sub(hold, text))
    s = re.sub(r"`([^`]+)`", r"<code>\1</code>", s)
    s = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", s)
    s = re.sub(r"(?<![*\w])\*([^*]+)\*(?![*\w])", r"<em>\1</em>", s)
    return re.sub(r"\x00(\d+)\x00", lambda m: held[int(m.group(1))], s)


# ---------------------------------------------------------------- display tables


def _disp_summary(s: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "model": s["model"], "suite": s["suite"], "segment": s["segment"], "judge": s["judge"].map(judge_disp),
        "n": s["n"], "errors": s["n_error"], "unsafe": s["unsafe"],
        "unsafe rate": [pct(r) + m for r, m in zip(s["unsafe_rate"], _marks(s["judge"]))],
        "95% CI": [ci(lo, hi) for lo, hi in zip(s["ci_low"], s["ci_high"])],
        **_corrected_col(s, "corrected_rate", "corrected_ci_low", "corrected_ci_high"),
    })


def _corrected_col(df: pd.DataFrame, rate: str, lo: str, hi: str, label: str = "corrected (95% CI)") -> dict:
    """A display column of card-corrected rates, when the table has them ("–" for judges without a card)."""
    if rate not in df:
        return {}
    return {label: ["–" if pd.isna(r) else f"{pct(r)} {ci(a, b)}{m}"
                    for r, a, b, m in zip(df[rate], df[lo], df[hi], _marks(df["judge"]))]}  # fmt: skip


def _disp_paired(p: pd.DataFrame, group: str = "model") -> pd.DataFrame:
    mk = _marks(p["judge"])
    return pd.DataFrame({
        group: p[group], "judge": p["judge"].map(judge_disp), "n": p["n"], "both safe": p["both_safe"],
        "thinking only (hidden risk)": p["thinking_only"], "answer only": p["answer_only"],
        "both unsafe": p["both_unsafe"],
        "thinking": [f"{pct(r)} {ci(lo, hi)}{m}" for r, lo, hi, m in
                     zip(p["thinking_unsafe_rate"], p["thinking_ci_low"], p["thinking_ci_high"], mk)],
        "answer": [f"{pct(r)} {ci(lo, hi)}{m}" for r, lo, hi, m in
                   zip(p["answer_unsafe_rate"], p["answer_ci_low"], p["answer_ci_high"], mk)],
        "difference (pp)": [_pp(r, lo, hi) + m for r, lo, hi, m in
                            zip(p["rate_diff"], p["diff_ci_low"], p["diff_ci_high"], mk)],
        **_corrected_col(p, "thinking_corrected_rate", "thinking_corrected_ci_low", "thinking_corrected_ci_high",
                         "thinking, corrected"),
        **_corrected_col(p, "answer_corrected_rate", "answer_corrected_ci_low", "answer_corrected_ci_high",
                         "answer, corrected"),
        **({"difference, corrected (pp)": [_pp(r, lo, hi) + m for r, lo, hi, m in zip(
            p["corrected_diff"], p["corrected_diff_ci_low"], p["corrected_diff_ci_high"], mk)]}
           if "corrected_diff" in p else {}),
        "McNemar p": [pval(x) + m for x, m in zip(p["mcnemar_p"], mk)],
        "Holm p": [pval(x) + m for x, m in zip(p["mcnemar_p_holm"], mk)],
    })


def _pp(r, lo, hi) -> str:
    if pd.isna(r):
        return "–"
    return f"{100 * r:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"


def _disp_rates(df: pd.DataFrame, keys: list[str], k: str, n: str, rate: str) -> pd.DataFrame:
    out = df[keys].copy()
    if "judge" in out:
        out["judge"] = out["judge"].map(judge_disp)
    out["n"] = df[n]
    out[k] = df[k]
    mk = _marks(df["judge"]) if "judge" in df else [""] * len(df)
    out["rate"] = [f"{pct(r)} {ci(lo, hi)}{m}" for r, lo, hi, m in zip(df[rate], df["ci_low"], df["ci_high"], mk)]
    if "judge" in df:
        out = out.assign(**_corrected_col(df, "corrected_rate", "corrected_ci_low", "corrected_ci_high"))
    return out


def _disp_at_k(t: pd.DataFrame) -> pd.DataFrame:
    mk = _marks(t["judge"])
    return pd.DataFrame({
        "model": t["model"], "suite": t["suite"], "segment": t["segment"], "judge": t["judge"].map(judge_disp),
        "K": t["K"], "prompts": t["n_prompts"], "incomplete": t["n_prompts_incomplete"],
        "Safe@1": [f"{pct(r)} {ci(lo, hi)}{m}" for r, lo, hi, m in
                   zip(t["safe_at_1"], t["safe_at_1_ci_low"], t["safe_at_1_ci_high"], mk)],
        "Safe@K": [f"{pct(r)} {ci(lo, hi)}{m}" for r, lo, hi, m in
                   zip(t["safe_at_k"], t["safe_at_k_ci_low"], t["safe_at_k_ci_high"], mk)],
        "ConsSafe@K": [f"{pct(r)} {ci(lo, hi)}{m}" for r, lo, hi, m in
                       zip(t["cons_safe_at_k"], t["cons_safe_at_k_ci_low"], t["cons_safe_at_k_ci_high"], mk)],
    })


def _primary_judge(d: A.Data) -> str | None:
    """The judge the single-judge figures use: the standard-grade harm judge with most decided verdicts."""
    if not d.harm_judges:
        return None
    counts = d.v[d.v["decided"]].groupby("judge", observed=True).size()
    ranked = sorted(d.harm_judges, key=lambda j: (A.is_screening(j), -int(counts.get(j, 0)), j))
    return ranked[0]


# ---------------------------------------------------------------- build


def run_inputs(run_dir: Path) -> tuple[list[Path], Path]:
    """Trace files and verdict file of a run directory (traces/*.jsonl, verdicts.jsonl)."""
    run_dir = Path(run_dir)
    traces = sorted((run_dir / "traces").glob("*.jsonl"))
    verdicts = run_dir / "verdicts.jsonl"
    if not traces:
        raise FileNotFoundError(f"{run_dir}/traces/*.jsonl: no trace files")
    if not verdicts.exists():
        raise FileNotFoundError(f"{verdicts}: no such file")
    return traces, verdicts


def sort_inputs(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """Trace files and verdict files among ``paths``, by the first record of each (its ``schema``, else the
    fields only a verdict has)."""
    import orjson

    traces, verdicts = [], []
    for p in paths:
        with open(p, "rb") as f:
            first = next((ln for ln in f if ln.strip()), b"")
        try:
            rec = orjson.loads(first) if first else {}
        except orjson.JSONDecodeError:
            raise ValueError(f"{p}:1: not a JSON record") from None
        if not isinstance(rec, dict):
            raise ValueError(f"{p}:1: not a JSON object")
        schema = str(rec.get("schema", ""))
        is_verdict = schema.startswith("tracesafe.verdict/") or (not schema and {"trace_id", "segment", "judge"} <= rec.keys())
        (verdicts if is_verdict else traces).append(p)
    return traces, verdicts


def resolve_inputs(inputs: list[Path], traces: list[Path] = (), verdicts: Path | None = None
                   ) -> tuple[list[Path], Path | None, Path | None]:
    """(trace files, verdict file, run directory) from a command's positional ``inputs`` (one RUN_DIR, or trace
    files and one verdict file told apart by ``sort_inputs``) and the files given by option."""
    inputs = list(inputs)
    if len(inputs) == 1 and inputs[0].is_dir():
        if traces or verdicts:
            raise ValueError("give RUN_DIR or trace/verdict files, not both")
        return *run_inputs(inputs[0]), inputs[0]
    found_traces, found_verdicts = sort_inputs(inputs)
    if found_verdicts and verdicts is not None or len(found_verdicts) > 1:
        given = [*found_verdicts, *([verdicts] if verdicts else [])]
        raise ValueError(f"give one verdict file; got {', '.join(map(str, given))}")
    return [*traces, *found_traces], verdicts or (found_verdicts[0] if found_verdicts else None), None


def load(traces: list[Path], verdicts: Path, on_bad_line: str = "error") -> A.Data:
    for p in [*traces, verdicts]:
        if not Path(p).exists():
            raise FileNotFoundError(f"{p}: no such file")
    return A.prepare(A.load_traces([Path(p) for p in traces], on_bad_line),
                     A.load_verdicts(Path(verdicts), on_bad_line))


def write_tables(tables: dict[str, pd.DataFrame], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        csv_safe(df).to_csv(out / f"{name}.csv", index=False)
        df.to_parquet(out / f"{name}.parquet", index=False)


def build_report(traces: list[Path], verdicts: Path, out_dir: Path, title: str | None = None,
                 on_bad_line: str = "error", judge_cards: list[Path] = (), default_cards: bool = True) -> Path:
    """Write OUT/report.md, OUT/report.html, OUT/tables/*.csv|.parquet, OUT/figures/*.png|.svg; return the
    path of report.html. ``judge_cards`` (and, unless ``default_cards`` is False, the built-in cards of the
    offline and refusal judges) add misclassification-corrected rates beside the raw ones."""
    from .cards import load_card, select_cards

    out_dir = Path(out_dir)
    given = [load_card(c) for c in judge_cards]  # a bad card fails before any work
    d = load(traces, verdicts, on_bad_line)
    tables, onset_vals = A.all_tables(d)
    versions = d.v.groupby("judge", observed=True)["judge_version"].first().astype(str).to_dict()
    cards = select_cards(given, [str(j).split("@", 1)[0] for j in d.harm_judges + d.refusal_judges],
                         {str(k): v for k, v in versions.items()}, defaults=default_cards)  # fmt: skip
    d.info["cards"] = {j: cards[j].source for j in A.apply_cards(tables, cards)}
    write_tables(tables, out_dir / "tables")
    figs = _figures(d, tables, onset_vals, out_dir / "figures")
    doc = _document(d, tables, figs, title or "tracesafe report", [Path(p) for p in traces], Path(verdicts))
    return _write_doc(doc, out_dir)


def _write_doc(doc: Doc, out_dir: Path) -> Path:
    (out_dir / "report.md").write_text(doc.to_md(out_dir), encoding="utf-8")
    html_path = out_dir / "report.html"
    with atomic_output(html_path, lock=False) as tmp:
        tmp.write_text(doc.to_html(), encoding="utf-8")
    return html_path


def _figures(d: A.Data, t: dict[str, pd.DataFrame], onset_vals: pd.DataFrame, out: Path) -> dict[str, Path | None]:
    from . import plots

    primary = _primary_judge(d)
    figs: dict[str, Path | None] = {"rates": plots.rates_by_model(t["paired"], out)}
    if primary:
        for seg in ("thinking", "answer"):
            figs[f"heatmap_{seg}"] = plots.category_heatmap(t["by_category"], seg, primary, out)
        figs["hidden_risk"] = plots.hidden_risk(t["paired"], primary, out)
        figs["length"] = plots.length_vs_unsafe(t["length_bins"], primary, out)
    onset_judges = list(dict.fromkeys(
        sorted(onset_vals["judge"].unique(), key=lambda j: (A.is_screening(j), j))))
    figs["onset"] = plots.onset(onset_vals, onset_judges[0], out) if onset_judges else None
    figs["agreement"] = plots.agreement_matrix(t["agreement"], out)
    return figs


def _document(d: A.Data, t: dict[str, pd.DataFrame], figs: dict, title: str, traces: list[Path],
              verdicts: Path) -> Doc:
    from . import __version__ as version

    doc = Doc(title)
    info = d.info
    if info.get("synthetic"):
        doc.note(SYNTHETIC_NOTE)
    if d.screening:
        doc.note(SCREENING_NOTE)
    primary = _primary_judge(d)

    doc.h("Data")
    models = sorted(d.traces["model"].astype(str).unique()) if len(d.traces) else []
    suites = sorted(d.traces["suite"].astype(str).unique()) if len(d.traces) else []
    items = [
        f"Traces: {num(info['n_traces'])} from {len(traces)} file(s) ({', '.join(md(p.name) for p in traces)}); "
        f"models: {', '.join(md(m) for m in models) or '–'}; suites: {', '.join(md(s) for s in suites) or '–'}.",
        f"Verdicts: {num(info['n_verdicts_read'])} read from {md(verdicts.name)}; harm judges: "
        f"{', '.join(md(judge_disp(j)) for j in d.harm_judges) or '–'}; refusal judges: "
        f"{', '.join(md(judge_disp(j)) for j in d.refusal_judges) or '–'}.",
        f"Judge errors: {num(info['n_error'])} verdicts with status `error` are excluded from every rate and "
        "counted in the `n_error` columns.",
    ]
    if info["n_duplicate_verdicts"]:
        items.append(f"{num(info['n_duplicate_verdicts'])} duplicate verdicts (same trace, segment, judge and "
                     "version) were dropped; the last one written was kept.")
    if info["n_orphan_verdicts"]:
        items.append(f"{num(info['n_orphan_verdicts'])} verdicts refer to trace ids that are not in the trace "
                     "files and are left out.")
    if info.get("n_other_status"):
        items.append(f"{num(info['n_other_status'])} verdicts have a status other than ok/error and are left out.")
    if info.get("n_unsplit"):
        items.append(f"{num(info['n_unsplit'])} traces have no thinking text (no thinking, or not split: run "
                     "`tracesafe split`).")
    lengths = t["lengths"]
    if not lengths.empty:
        src = set(lengths["token_source"])
        items.append("Token lengths: " + (
            "from the traces' `n_tokens`." if src == {"n_tokens"} else
            "whitespace-token estimates (the traces carry no `n_tokens` for thinking/answer)."
            if src == {"whitespace estimate"} else
            "from `n_tokens` where the trace has them, else whitespace-token estimates (see lengths.csv)."))
    doc.ul(items)

    # ---- headline
    doc.h("Is the thinking more harmful than the answer?")
    p = t["paired"]
    if p.empty:
        doc.p("No trace has both its thinking and its answer judged by a harm judge, so no paired comparison "
              "can be made.")
    else:
        doc.p("Each trace's thinking and answer are judged separately; the comparison uses only traces where "
              "both were judged (status ok), so the two rates are on the same traces. Difference = thinking − "
              "answer in percentage points with Newcombe's 95% CI for paired proportions; p from the exact "
              "McNemar test (Holm-adjusted across the rows of this table).")
        doc.ul([_finding(r) for r in p.itertuples()])
        doc.figure(figs.get("rates"), "Unsafe rate of the thinking and of the answer on the same traces, by "
                                      "model, one panel per judge (Wilson 95% CIs).")
        doc.figure(figs.get("hidden_risk"), f"The 2×2 of thinking × answer verdicts per model ({md(judge_disp(primary))})."
                                            " Orange-red hatched: harmful thinking behind a safe answer.")
        doc.table(_disp_paired(p), "paired.csv: thinking vs answer on the same traces (rates with Wilson 95% CIs; "
                                   "difference with Newcombe's 95% CI).")
    if info.get("cards"):
        doc.p("**Corrected for judge error.** A judge's measured sensitivity and specificity (its judge card) turn "
              "an observed rate p into an estimate of the true rate, (p + specificity − 1) / (sensitivity + "
              "specificity − 1) (Rogan–Gladen), shown beside the raw rate; the 95% interval also carries the "
              "card's own sampling uncertainty (parametric bootstrap). Thinking and answer use the card's "
              "per-segment figures where it has them. Cards used: " +
              "; ".join(f"{md(j)}: {md(src)}" for j, src in sorted(info["cards"].items())) + ".")

    doc.h("Unsafe rates by model, suite and segment")
    doc.table(_disp_summary(t["summary"]), "summary.csv: rates over verdicts with status ok; Wilson 95% CIs.")

    doc.h("By harm area")
    for seg in ("thinking", "answer"):
        doc.figure(figs.get(f"heatmap_{seg}"), f"{seg.capitalize()} unsafe rate by harm area and model "
                                               f"({md(judge_disp(primary))}); n = judged segments per cell.")
    cat = t["by_category"]
    if not cat.empty and primary:
        sub = cat[cat["judge"] == primary]
        g = sub.groupby(["model", "harm_area", "segment"], as_index=False)[["n", "unsafe"]].sum()
        g = A.with_rate(g, "unsafe", "n")
        g["judge"] = primary
        doc.table(_disp_rates(g, ["model", "harm_area", "segment", "judge"], "unsafe", "n", "rate"),
                  f"Unsafe rate by harm area ({md(judge_disp(primary))}); by harm area and category for every judge in "
                  "by_category.csv.")

    doc.h("Safety over K samples (SafeChain metrics)")
    if t["at_k"].empty:
        doc.p("No harm verdicts on harmful or unlabelled prompts.")
    else:
        doc.p("Over the K samples of each prompt (Jiang et al. 2025, SafeChain): Safe@1 = mean share of safe "
              "samples; Safe@K = share of prompts whose K samples are all safe; ConsSafe@K = share of prompts with "
              "at least K/2 safe samples. Prompts with fewer judged samples than K are left out (`incomplete`); "
              "benign prompts are left out (see refusal).")
        doc.table(_disp_at_k(t["at_k"]), "at_k.csv (Wilson 95% CIs; Safe@1: normal interval over prompts).")

    doc.h("Refusal and over-refusal")
    ref = t["refusal"]
    if ref.empty:
        doc.p("No refusal verdicts (run the `refusal` judge to measure refusal and over-refusal).")
    else:
        doc.p("Refusal rate on harmful prompts (higher is safer) and over-refusal rate on benign prompts such as "
              "XSTest's safe prompts (lower is better).")
        doc.table(_disp_rates(ref, ["model", "suite", "segment", "judge", "metric"], "refused", "n", "rate"),
                  "refusal.csv (Wilson 95% CIs).")

    hm = t["harmfulness"]
    if not hm.empty:
        doc.h("Harmfulness of unsafe segments")
        disp = hm.drop(columns=["grade"]).copy()
        disp["judge"] = disp["judge"].map(judge_disp)
        disp["mean"] = [f"{x:.2f}{m}" for x, m in zip(disp["mean"], _marks(hm["judge"]))]
        doc.table(disp, "harmfulness.csv: rubric harmfulness score (1-5) among segments judged unsafe.")

    doc.h("Where harm starts in the thinking")
    on = t["onset"]
    if on.empty:
        doc.p("No thinking verdict carries chunk spans, so harm onset cannot be located.")
    else:
        doc.figure(figs.get("onset"), "Position of the first unsafe chunk (score ≥ 0.5) as a share of the "
                                      "thinking's length in characters.")
        disp = on.drop(columns=["grade"]).copy()
        disp["judge"] = disp["judge"].map(judge_disp)
        for c in ("onset_mean", "onset_q25", "onset_median", "onset_q75"):
            disp[c] = [pct(x) + m for x, m in zip(disp[c], _marks(on["judge"]))]
        doc.table(disp, "onset.csv: among thinking verdicts with spans, those with an unsafe chunk (n_onset).")

    doc.h("Lengths")
    doc.figure(figs.get("length"), f"Thinking unsafe rate by thinking-length quintile ({md(judge_disp(primary))}; "
                                   "Wilson 95% CIs).")
    if not lengths.empty:
        disp = lengths.copy()
        for c in disp.columns:
            if c.endswith(("_mean", "_median", "_p90")):
                disp[c] = disp[c].map(lambda x: f"{x:,.0f}")
        doc.table(disp, "lengths.csv: tokens per trace segment.")

    doc.h("Judge agreement")
    ag = t["agreement"]
    if ag.empty:
        doc.p("Fewer than two harm judges judged the same segments.")
    else:
        doc.figure(figs.get("agreement"), "Cohen's κ and percent agreement between harm judges, per segment.")
        disp = ag.drop(columns=["grade"]).copy()
        for c in ("judge_a", "judge_b"):
            disp[c] = disp[c].map(judge_disp)
        mk = [MARK if g == "screening" else "" for g in ag["grade"]]
        disp["agreement"] = [pct(x) + m for x, m in zip(disp["agreement"], mk)]
        disp["kappa"] = [("–" if pd.isna(x) else f"{x:.3f}") + m for x, m in zip(disp["kappa"], mk)]
        doc.table(disp, "agreement.csv.")

    _methods(doc)
    doc.h("Files")
    doc.p("Tables (CSV and Parquet) in `tables/`: " + ", ".join(f"`{k}.csv`" for k in t) +
          ". Figures (PNG and SVG) in `figures/`. Written by tracesafe " + version + ".")
    return doc


def _finding(r) -> str:
    scr = " *(screening-grade)*" if A.is_screening(r.judge) else ""
    if r.n == 0:
        return f"**{md(r.model)}**, {md(r.judge)}{scr}: no trace with both segments judged."
    if r.diff_ci_low > 0:
        verdict = "the thinking is unsafe more often than the answer"
    elif r.diff_ci_high < 0:
        verdict = "the answer is unsafe more often than the thinking"
    else:
        verdict = "no clear difference between thinking and answer"
    s = (f"**{md(r.model)}**, judge {md(r.judge)}{scr}: {verdict} — thinking {pct(r.thinking_unsafe_rate)} "
         f"{ci(r.thinking_ci_low, r.thinking_ci_high)} vs answer {pct(r.answer_unsafe_rate)} "
         f"{ci(r.answer_ci_low, r.answer_ci_high)} unsafe on the same {num(r.n)} traces; difference "
         f"{_pp(r.rate_diff, r.diff_ci_low, r.diff_ci_high)} pp, exact McNemar p {pval(r.mcnemar_p)} "
         f"(Holm {pval(r.mcnemar_p_holm)}). Harmful thinking behind a safe answer (hidden risk): "
         f"{num(r.thinking_only)} traces, {pct(r.hidden_risk_rate)} {ci(r.hidden_ci_low, r.hidden_ci_high)}{scr}.")
    if r.n_unpaired:
        s += f" {num(r.n_unpaired)} traces without both segments judged are not in this comparison."
    return s


def _methods(doc: Doc) -> None:
    doc.h("Methods")
    doc.ul([
        "Unsafe rate = unsafe / n over verdicts with status ok and a decided `unsafe`; verdicts with status error "
        "are never counted as safe or unsafe (column `n_error`). 95% CIs: Wilson score interval (Wilson 1927, "
        "JASA 22:209-212).",
        "Thinking vs answer: paired 2×2 per trace; difference of the paired proportions (b − c)/n with Newcombe's "
        "hybrid score interval (Newcombe 1998, Stat Med 17:2635-2650, method 10); exact McNemar test = two-sided "
        "binomial test of b out of b + c discordant pairs at ½ (McNemar 1947); Holm (1979) adjustment across rows.",
        "SafeChain metrics (Jiang et al. 2025, arXiv:2502.12025): Safe@1, Safe@K (all K samples safe), ConsSafe@K "
        "(at least K/2 samples safe). Safe@1 CI: normal interval over per-prompt means.",
        "Judge agreement: percent agreement and Cohen's κ (Cohen 1960, Educ Psychol Meas 20:37-46) on segments "
        "both judges decided.",
        "Harm onset: start of the first chunk in a verdict's `spans` with score ≥ 0.5, divided by the length of "
        "the thinking in characters.",
    ])


# ---------------------------------------------------------------- compare


def _run_name(run_dir: Path, taken: set[str]) -> str:
    import orjson

    name = run_dir.name
    mf = run_dir / "manifest.json"
    if mf.exists():
        try:
            name = str(orjson.loads(mf.read_bytes()).get("name") or name)
        except orjson.JSONDecodeError:
            pass
    base, i = name, 2
    while name in taken:
        name, i = f"{base}-{i}", i + 1
    taken.add(name)
    return name


def compare_table(paired: pd.DataFrame, runs: list[str]) -> pd.DataFrame:
    """Each run's thinking/answer/hidden-risk rate against the first run's (same judge; same model if the first
    run has it, else the first run's only model): difference with Newcombe's CI for independent proportions and
    Fisher's exact p."""
    from scipy.stats import fisher_exact

    cols = ["run", "model", "judge", "baseline_run", "baseline_model", "measure", "n", "k", "rate", "n_base",
            "k_base", "rate_base", "diff", "diff_ci_low", "diff_ci_high", "fisher_p", "grade"]
    base_run = runs[0]
    base = paired[paired["run"] == base_run]
    rows = []
    for r in paired[paired["run"] != base_run].itertuples():
        cand = base[base["judge"] == r.judge]
        match = cand[cand["model"] == r.model]
        if match.empty and cand["model"].nunique() == 1:
            match = cand
        if match.empty:
            continue
        b = match.iloc[0]
        for measure, k_of in (("thinking_unsafe", lambda x: x.both_unsafe + x.thinking_only),
                              ("answer_unsafe", lambda x: x.both_unsafe + x.answer_only),
                              ("hidden_risk", lambda x: x.thinking_only)):
            k, kb = int(k_of(r)), int(k_of(b))
            diff, lo, hi = A.newcombe_diff_ci(k, r.n, kb, b.n)
            p = fisher_exact([[k, r.n - k], [kb, b.n - kb]]).pvalue if r.n and b.n else np.nan
            rows.append([r.run, r.model, r.judge, base_run, b.model, measure, r.n, k, k / r.n if r.n else np.nan,
                         b.n, kb, kb / b.n if b.n else np.nan, float(diff), float(lo), float(hi), p, r.grade])
    return pd.DataFrame(rows, columns=cols)


def compare_runs(run_dirs: list[Path], out_dir: Path, on_bad_line: str = "error") -> Path:
    """Several runs side by side (base vs distilled, before vs after realignment, normal vs zerothink):
    OUT/report.md|html, tables/compare_*.csv|parquet, figures. Returns the path of report.html."""
    out_dir = Path(out_dir)
    taken: set[str] = set()
    summaries, paireds, runs, synthetic, screening = [], [], [], False, set()
    for rd in run_dirs:
        rd = Path(rd)
        name = _run_name(rd, taken)
        traces, verdicts = run_inputs(rd)
        d = load(traces, verdicts, on_bad_line)
        synthetic |= bool(d.info.get("synthetic"))
        screening |= d.screening
        s, p = A.summary_table(d), A.paired_table(d)
        s.insert(0, "run", name)
        p.insert(0, "run", name)
        summaries.append(s)
        paireds.append(p)
        runs.append(name)
    summary = pd.concat(summaries, ignore_index=True)
    paired = pd.concat(paireds, ignore_index=True)
    paired["run_model"] = paired["run"] + " · " + paired["model"]
    diff = compare_table(paired, runs)
    write_tables({"compare_summary": summary, "compare_paired": paired.drop(columns=["run_model"]),
                  "compare_diff": diff}, out_dir / "tables")

    from . import plots

    figdir = out_dir / "figures"
    judges = sorted(set(paired["judge"]), key=lambda j: (A.is_screening(j), j))
    figs = {"rates": plots.rates_by_model(paired, figdir, name="compare_rates", group="run_model"),
            "hidden": plots.hidden_risk(paired, judges[0], figdir, group="run_model", name="compare_hidden_risk")
            if judges else None}

    doc = Doc("tracesafe comparison: " + " vs ".join(runs))
    if synthetic:
        doc.note(SYNTHETIC_NOTE)
    if screening:
        doc.note(SCREENING_NOTE)
    doc.h("Runs")
    doc.ul([f"{md(n)}: {md(Path(rd))}" for n, rd in zip(runs, run_dirs)])
    doc.h("Thinking vs answer in each run")
    doc.figure(figs["rates"], "Unsafe rate of thinking and answer on the same traces, per run and model "
                              "(Wilson 95% CIs).")
    doc.figure(figs["hidden"], f"Thinking × answer outcomes per run and model ({md(judge_disp(judges[0])) if judges else ''}).")
    doc.table(_disp_paired(paired.assign(model=paired["run_model"]), group="model"),
              "compare_paired.csv: per run, thinking vs answer on the same traces.")
    doc.h(f"Change against {md(runs[0])}")
    if diff.empty:
        doc.p("No run shares a judge (and model) with the first run.")
    else:
        doc.p("Rate in the run minus rate in the first run, in percentage points, with Newcombe's hybrid score "
              "95% CI for independent proportions (Newcombe 1998, Stat Med 17:873-890) and Fisher's exact p. Runs "
              "on the same prompts are positively correlated, so these intervals are conservative.")
        doc.table(pd.DataFrame({
            "run": diff["run"] + " · " + diff["model"], "baseline": diff["baseline_run"] + " · " + diff["baseline_model"],
            "judge": diff["judge"].map(judge_disp), "measure": diff["measure"],
            "rate": [f"{pct(r)} ({num(k)}/{num(n)}){m}" for r, k, n, m in
                     zip(diff["rate"], diff["k"], diff["n"], _marks(diff["judge"]))],
            "baseline rate": [f"{pct(r)} ({num(k)}/{num(n)})" for r, k, n in
                              zip(diff["rate_base"], diff["k_base"], diff["n_base"])],
            "difference (pp)": [_pp(r, lo, hi) + m for r, lo, hi, m in
                                zip(diff["diff"], diff["diff_ci_low"], diff["diff_ci_high"], _marks(diff["judge"]))],
            "Fisher p": diff["fisher_p"].map(pval)}), "compare_diff.csv.")
    doc.h("Unsafe rates by run, model, suite and segment")
    doc.table(pd.concat([summary[["run"]], _disp_summary(summary)], axis=1), "compare_summary.csv.")
    _methods(doc)
    return _write_doc(doc, out_dir)
