"""The report's sections, in order (``SECTIONS``), and the display forms of its tables."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..analysis import Data, with_rate
from .document import Doc
from .format import ci, error_reasons, judge_disp, marks, md, num, pct, pp, pval

SCREENING_NOTE = (
    "Verdicts from the `offline` judge are **screening-grade**: a fast local classifier meant to triage, not "
    "a validated safety judge. Every number from it is marked ‡ or *(screening-grade)*; do not report it as a "
    "finding without a validated judge (Llama Guard, WildGuard, HarmBench classifier or the rubric judge)."
)
SYNTHETIC_NOTE = (
    "These traces are **SYNTHETIC** (marked `synthetic` or from a `synthetic/` model): the numbers below "
    "illustrate the report and are **not findings** about any real model."
)


def _disp_summary(s: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "model": s["model"], "suite": s["suite"], "segment": s["segment"], "judge": _judges(s),
        "n": s["n"], "errors": s["n_error"], "unsafe": s["unsafe"],
        "unsafe rate": [pct(r) + m for r, m in zip(s["unsafe_rate"], marks(s["grade"]))],
        "95% CI": [ci(lo, hi) for lo, hi in zip(s["ci_low"], s["ci_high"])],
        **_corrected_col(s, "corrected_rate", "corrected_ci_low", "corrected_ci_high"),
    })


CARD_CONFLICT_MARK = " ⚠"


def _corrected_col(df: pd.DataFrame, rate: str, lo: str, hi: str, label: str = "corrected (95% CI)",
                   conflict: str = "card_conflict") -> dict:
    """A display column of card-corrected rates, when the table has them ("–" for judges without a card; ⚠ where
    the observed rate is outside what the card allows, see CARD_CONFLICT_NOTE)."""
    if rate not in df:
        return {}
    flags = df[conflict].fillna("") if conflict in df else [""] * len(df)
    return {label: [("–" if pd.isna(r) else f"{pct(r)} {ci(a, b)}{m}") + (CARD_CONFLICT_MARK if f else "")
                    for r, a, b, m, f in zip(df[rate], df[lo], df[hi], marks(df["grade"]), flags)]}  # fmt: skip


CARD_CONFLICT_NOTE = (
    "⚠ **The card and the data disagree** on {n} of the corrected rates in this report (marked ⚠): the observed "
    "rate is below the judge's false-positive floor on its card (1 − specificity: the share of safe texts of the "
    "card's gold set that the judge flagged) or above its sensitivity (the share of harmful ones it flagged). The "
    "judge behaves differently on these data than on its validation set (with few verdicts, the gap may also be "
    "chance), so the corrected rate is clipped to 0 or 1 and its interval, and a corrected difference that uses "
    "it, is not informative: read the raw rate. The `card_conflict` columns of the tables name the side."
)


def card_conflicts(t: dict[str, pd.DataFrame]) -> int:
    """How many corrected rates (summary, refusal, paired thinking and answer) the card and the data disagree on."""
    cols = {"summary": ["card_conflict"], "refusal": ["card_conflict"],
            "paired": ["thinking_card_conflict", "answer_card_conflict"]}  # fmt: skip
    return sum(int((t[name][c].fillna("") != "").sum()) for name, cs in cols.items() if name in t
               for c in cs if c in t[name])  # fmt: skip


def _disp_paired(p: pd.DataFrame, group: str = "model") -> pd.DataFrame:
    mk = marks(p["grade"])
    return pd.DataFrame({
        group: p[group], "judge": _judges(p), "n": p["n"], "both safe": p["both_safe"],
        "thinking only (hidden risk)": p["thinking_only"], "answer only": p["answer_only"],
        "both unsafe": p["both_unsafe"],
        "thinking": [f"{pct(r)} {ci(lo, hi)}{m}" for r, lo, hi, m in
                     zip(p["thinking_unsafe_rate"], p["thinking_ci_low"], p["thinking_ci_high"], mk)],
        "answer": [f"{pct(r)} {ci(lo, hi)}{m}" for r, lo, hi, m in
                   zip(p["answer_unsafe_rate"], p["answer_ci_low"], p["answer_ci_high"], mk)],
        "difference (pp)": [pp(r, lo, hi) + m for r, lo, hi, m in
                            zip(p["rate_diff"], p["diff_ci_low"], p["diff_ci_high"], mk)],
        **_corrected_col(p, "thinking_corrected_rate", "thinking_corrected_ci_low", "thinking_corrected_ci_high",
                         "thinking, corrected", "thinking_card_conflict"),
        **_corrected_col(p, "answer_corrected_rate", "answer_corrected_ci_low", "answer_corrected_ci_high",
                         "answer, corrected", "answer_card_conflict"),
        **({"difference, corrected (pp)": [pp(r, lo, hi) + m for r, lo, hi, m in zip(
            p["corrected_diff"], p["corrected_diff_ci_low"], p["corrected_diff_ci_high"], mk)]}
           if "corrected_diff" in p else {}),
        "McNemar p": [pval(x) + m for x, m in zip(p["mcnemar_p"], mk)],
        "Holm p": [pval(x) + m for x, m in zip(p["mcnemar_p_holm"], mk)],
    })


def _disp_rates(df: pd.DataFrame, keys: list[str], k: str, n: str, rate: str) -> pd.DataFrame:
    out = df[keys].copy()
    if "judge" in out:
        out["judge"] = _judges(df)
    out["n"] = df[n]
    out[k] = df[k]
    mk = marks(df["grade"]) if "judge" in df else [""] * len(df)
    out["rate"] = [f"{pct(r)} {ci(lo, hi)}{m}" for r, lo, hi, m in zip(df[rate], df["ci_low"], df["ci_high"], mk)]
    if "judge" in df:
        out = out.assign(**_corrected_col(df, "corrected_rate", "corrected_ci_low", "corrected_ci_high"))
    return out


def _disp_at_k(t: pd.DataFrame) -> pd.DataFrame:
    mk = marks(t["grade"])
    return pd.DataFrame({
        "model": t["model"], "suite": t["suite"], "segment": t["segment"], "judge": _judges(t),
        "K": t["K"], "prompts": t["n_prompts"], "incomplete": t["n_prompts_incomplete"],
        "Safe@1": [f"{pct(r)} {ci(lo, hi)}{m}" for r, lo, hi, m in
                   zip(t["safe_at_1"], t["safe_at_1_ci_low"], t["safe_at_1_ci_high"], mk)],
        "Safe@K": [f"{pct(r)} {ci(lo, hi)}{m}" for r, lo, hi, m in
                   zip(t["safe_at_k"], t["safe_at_k_ci_low"], t["safe_at_k_ci_high"], mk)],
        "ConsSafe@K": [f"{pct(r)} {ci(lo, hi)}{m}" for r, lo, hi, m in
                       zip(t["cons_safe_at_k"], t["cons_safe_at_k_ci_low"], t["cons_safe_at_k_ci_high"], mk)],
    })


def _primary_judge(d: Data) -> str | None:
    """The judge the single-judge figures use: the standard-grade harm judge with most decided verdicts."""
    if not d.harm_judges:
        return None
    counts = d.v[d.v["decided"]].groupby("judge", observed=True).size()
    ranked = sorted(d.harm_judges, key=lambda j: (d.grades[j] == "screening", -int(counts.get(j, 0)), j))
    return ranked[0]


@dataclass
class Context:
    """What a section draws on: the data set, its tables and figures, and the input files."""

    d: Data
    tables: dict[str, pd.DataFrame]
    figs: dict[str, Path | None]
    traces: list[Path]
    verdicts: Path
    primary: str | None  # the judge of the single-judge figures


def document(d: Data, t: dict[str, pd.DataFrame], figs: dict, title: str, traces: list[Path],
             verdicts: Path) -> Doc:
    """The report: the notes on synthetic and screening-grade data, then every section of ``SECTIONS``."""
    doc = Doc(title)
    if d.info.get("synthetic"):
        doc.note(SYNTHETIC_NOTE)
    if d.screening:
        doc.note(SCREENING_NOTE)
    ctx = Context(d, t, figs, traces, verdicts, _primary_judge(d))
    for section in SECTIONS:
        section(doc, ctx)
    return doc


def data_section(doc: Doc, c: Context) -> None:
    d, info, traces = c.d, c.d.info, c.traces
    doc.h("Data")
    models = sorted(d.traces["model"].astype(str).unique()) if len(d.traces) else []
    suites = sorted(d.traces["suite"].astype(str).unique()) if len(d.traces) else []
    items = [
        f"Traces: {num(info['n_traces'])} from {len(traces)} file(s) ({', '.join(md(p.name) for p in traces)}); "
        f"models: {', '.join(md(m) for m in models) or '–'}; suites: {', '.join(md(s) for s in suites) or '–'}.",
        f"Verdicts: {num(info['n_verdicts_read'])} read from {md(c.verdicts.name)}; harm judges: "
        f"{', '.join(md(_judge(c, j)) for j in d.harm_judges) or '–'}; refusal judges: "
        f"{', '.join(md(_judge(c, j)) for j in d.refusal_judges) or '–'}.",
        f"Judge errors: {num(info['n_error'])} verdicts with status `error` are excluded from every rate and "
        "counted in the `n_error` columns." + error_reasons(info["error_reasons"], d.grades),
    ]
    if info["n_duplicate_verdicts"]:
        items.append(f"{num(info['n_duplicate_verdicts'])} duplicate verdicts (same trace, segment, judge and "
                     "version) were dropped; the last one written was kept.")
    if info["n_orphan_verdicts"]:
        items.append(f"{num(info['n_orphan_verdicts'])} verdicts refer to trace ids that are not in the trace "
                     "files and are left out.")
    if info.get("n_other_status"):
        items.append(f"{num(info['n_other_status'])} verdicts have a status other than ok/error and are left out.")
    if info.get("n_no_thinking"):  # traces never split were split on loading, so none is simply unsplit
        items.append(f"{num(info['n_no_thinking'])} traces have no thinking text (the model wrote none, or its "
                     "reasoning format was not recognised: see `tracesafe formats list` and `tracesafe split --format NAME`).")
    lengths = c.tables["lengths"]
    if not lengths.empty:
        src = set(lengths["token_source"])
        items.append("Token lengths: " + (
            "from the traces' `n_tokens`." if src == {"n_tokens"} else
            "whitespace-token estimates (the traces carry no `n_tokens` for thinking/answer)."
            if src == {"whitespace estimate"} else
            "from `n_tokens` where the trace has them, else whitespace-token estimates (see lengths.csv)."))
    doc.ul(items)


def headline_section(doc: Doc, c: Context) -> None:
    doc.h("Is the thinking more harmful than the answer?")
    p = c.tables["paired"]
    if p.empty:
        doc.p("No trace of a prompt not labelled benign has both its thinking and its answer judged by a harm "
              "judge, so no paired comparison can be made (benign prompts measure over-refusal: refusal.csv).")
    else:
        doc.p("Each trace's thinking and answer are judged separately; the comparison uses only traces where "
              "both were judged (status ok), so the two rates are on the same traces, and leaves out prompts "
              "labelled benign (over-refusal: refusal.csv), so its rates can differ from summary.csv's, which "
              "counts every prompt. Difference = thinking − "
              "answer in percentage points with Newcombe's 95% CI for paired proportions; p from the exact "
              "McNemar test (Holm-adjusted across the rows of this table).")
        doc.ul([_finding(r) for r in p.itertuples()])
        doc.figure(c.figs.get("rates"), "Unsafe rate of the thinking and of the answer on the same traces, by "
                                        "model, one panel per judge (Wilson 95% CIs).")
        doc.figure(c.figs.get("hidden_risk"), f"The 2×2 of thinking × answer verdicts per model "
                                              f"({md(_judge(c, c.primary))}). Orange-red hatched: harmful thinking "
                                              "behind a safe answer.")
        doc.table(_disp_paired(p), "paired.csv: thinking vs answer on the same traces (rates with Wilson 95% CIs; "
                                   "difference with Newcombe's 95% CI).")
    if c.d.info.get("cards"):
        doc.p("**Corrected for judge error.** A judge's measured sensitivity and specificity (its judge card) turn "
              "an observed rate p into an estimate of the true rate, (p + specificity − 1) / (sensitivity + "
              "specificity − 1) (Rogan–Gladen), shown beside the raw rate; the 95% interval also carries the "
              "card's own sampling uncertainty (its posterior under misclassification). Thinking and answer use the card's "
              "per-segment figures where it has them. Cards used: " +
              "; ".join(f"{md(j)}: {md(src)}" for j, src in sorted(c.d.info["cards"].items())) + ".")
        n = card_conflicts(c.tables)
        if n:
            doc.p(CARD_CONFLICT_NOTE.format(n=n))
    if c.d.info.get("cards_not_used"):
        doc.p("**No correction** for " + "; ".join(f"{md(j)} (card {md(why)})" for j, why in
                                                     sorted(c.d.info["cards_not_used"].items())) +
              ": its card measured the judge at other decision options (a threshold, the offline judge's second stage) "
              "than these verdicts were judged with, and each trades sensitivity for specificity. Make a card at the "
              "same options (`tracesafe judge-eval --judge NAME -O … --gold GOLD --card CARD.json`) and pass it with "
              "`--judge-card`.")  # fmt: skip


def summary_section(doc: Doc, c: Context) -> None:
    doc.h("Unsafe rates by model, suite and segment")
    doc.table(_disp_summary(c.tables["summary"]), "summary.csv: rates over verdicts with status ok; Wilson 95% CIs." +
              _conflict_caption(c.tables["summary"]))


def _conflict_caption(df: pd.DataFrame) -> str:
    if "card_conflict" in df and (df["card_conflict"].fillna("") != "").any():
        return " ⚠: the judge card and the data disagree; the corrected interval is not informative (see above)."
    return ""


def harm_area_section(doc: Doc, c: Context) -> None:
    doc.h("By harm area")
    primary = c.primary
    for seg in ("thinking", "answer"):
        doc.figure(c.figs.get(f"heatmap_{seg}"), f"{seg.capitalize()} unsafe rate by harm area and model "
                                                 f"({md(_judge(c, primary))}); n = judged segments per cell.")
    cat = c.tables["by_category"]
    if not cat.empty and primary:
        sub = cat[cat["judge"] == primary]
        g = sub.groupby(["model", "harm_area", "segment"], as_index=False)[["n", "unsafe"]].sum()
        g = with_rate(g, "unsafe", "n")
        g["judge"] = primary
        g["grade"] = c.d.grades[primary]
        doc.table(_disp_rates(g, ["model", "harm_area", "segment", "judge"], "unsafe", "n", "rate"),
                  f"Unsafe rate by harm area ({md(_judge(c, primary))}); by harm area and category for every judge "
                  "in by_category.csv.")


def at_k_section(doc: Doc, c: Context) -> None:
    doc.h("Safety over K samples (SafeChain metrics)")
    if c.tables["at_k"].empty:
        doc.p("No harm verdicts on harmful or unlabelled prompts.")
    else:
        doc.p("Over the K samples of each prompt (Jiang et al. 2025, SafeChain): Safe@1 = mean share of safe "
              "samples; Safe@K = share of prompts whose K samples are all safe; ConsSafe@K = share of prompts with "
              "at least K/2 safe samples. Prompts with fewer judged samples than K are left out (`incomplete`); "
              "benign prompts are left out (see refusal).")
        doc.table(_disp_at_k(c.tables["at_k"]), "at_k.csv (Wilson 95% CIs; Safe@1: normal interval over prompts).")


def refusal_section(doc: Doc, c: Context) -> None:
    doc.h("Refusal and over-refusal")
    ref = c.tables["refusal"]
    if ref.empty:
        doc.p("No refusal verdicts (run the `refusal` judge to measure refusal and over-refusal).")
    else:
        doc.p("Refusal rate on harmful prompts (higher is safer) and over-refusal rate on benign prompts such as "
              "XSTest's safe prompts (lower is better).")
        doc.table(_disp_rates(ref, ["model", "suite", "segment", "judge", "metric"], "refused", "n", "rate"),
                  "refusal.csv (Wilson 95% CIs)." + _conflict_caption(ref))


def harmfulness_section(doc: Doc, c: Context) -> None:
    hm = c.tables["harmfulness"]
    if not hm.empty:
        doc.h("Harmfulness of unsafe segments")
        disp = hm.drop(columns=["grade"]).copy()
        disp["judge"] = _judges(hm)
        disp["mean"] = [f"{x:.2f}{m}" for x, m in zip(disp["mean"], marks(hm["grade"]))]
        doc.table(disp, "harmfulness.csv: rubric harmfulness score (1-5) among segments judged unsafe.")


def onset_section(doc: Doc, c: Context) -> None:
    doc.h("Where harm starts in the thinking")
    on = c.tables["onset"]
    if on.empty:
        doc.p("No thinking verdict carries chunk spans, so harm onset cannot be located.")
    else:
        doc.figure(c.figs.get("onset"), "Position of the first unsafe chunk (score ≥ 0.5) as a share of the "
                                        "thinking's length in characters.")
        disp = on.drop(columns=["grade"]).copy()
        disp["judge"] = _judges(on)
        for col in ("onset_mean", "onset_q25", "onset_median", "onset_q75"):
            disp[col] = [pct(x) + m for x, m in zip(disp[col], marks(on["grade"]))]
        doc.table(disp, "onset.csv: among thinking verdicts with spans, those with an unsafe chunk (n_onset).")


def lengths_section(doc: Doc, c: Context) -> None:
    doc.h("Lengths")
    doc.figure(c.figs.get("length"), f"Thinking unsafe rate by thinking-length quintile ({md(_judge(c, c.primary))}; "
                                     "Wilson 95% CIs).")
    lengths = c.tables["lengths"]
    if not lengths.empty:
        disp = lengths.copy()
        for col in disp.columns:
            if col.endswith(("_mean", "_median", "_p90")):
                disp[col] = disp[col].map(lambda x: f"{x:,.0f}")
        doc.table(disp, "lengths.csv: tokens per trace segment.")


def agreement_section(doc: Doc, c: Context) -> None:
    doc.h("Judge agreement")
    ag = c.tables["agreement"]
    if ag.empty:
        doc.p("Fewer than two harm judges judged the same segments.")
    else:
        doc.figure(c.figs.get("agreement"), "Cohen's κ and percent agreement between harm judges, per segment.")
        disp = ag.drop(columns=["grade"]).copy()
        for col in ("judge_a", "judge_b"):
            disp[col] = disp[col].map(lambda j: _judge(c, j))
        mk = marks(ag["grade"])
        disp["agreement"] = [pct(x) + m for x, m in zip(disp["agreement"], mk)]
        disp["kappa"] = [("–" if pd.isna(x) else f"{x:.3f}") + m for x, m in zip(disp["kappa"], mk)]
        doc.table(disp, "agreement.csv.")


def methods_section(doc: Doc, c: Context | None = None) -> None:
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


def files_section(doc: Doc, c: Context) -> None:
    from .. import __version__ as version

    doc.h("Files")
    doc.p("Tables (CSV and Parquet) in `tables/`: " + ", ".join(f"`{k}.csv`" for k in c.tables) +
          ". Figures (PNG and SVG) in `figures/`. Written by tracesafe " + version + ".")


# Report order. A new section is a function (doc, context) -> None added here.
SECTIONS: list[Callable[[Doc, Context], None]] = [
    data_section, headline_section, summary_section, harm_area_section, at_k_section, refusal_section,
    harmfulness_section, onset_section, lengths_section, agreement_section, methods_section, files_section,
]


def _judge(c: Context, judge: str | None) -> str:
    return judge_disp(judge, c.d.grades.get(judge))


def _judges(df: pd.DataFrame) -> list[str]:
    """The judge column of a table for display: screening-grade judges say so."""
    return [judge_disp(j, g) for j, g in zip(df["judge"], df["grade"])]


def _finding(r) -> str:
    scr = " *(screening-grade)*" if r.grade == "screening" else ""
    if r.n == 0:
        return f"**{md(r.model)}**, {md(r.judge)}{scr}: no trace with both segments judged."
    more = "the thinking is unsafe more often than the answer" if r.diff_ci_low > 0 else (
        "the answer is unsafe more often than the thinking" if r.diff_ci_high < 0 else None)
    if more is None:
        verdict = "no clear difference between thinking and answer"
    elif r.mcnemar_p_holm < 0.05:
        verdict = more
    else:  # the Newcombe interval and the exact test after Holm (across all rows) can disagree: say so, claim neither
        verdict = f"inconclusive: the interval of the difference says {more}, the exact test after Holm's correction does not (p ≥ 0.05)"
    s = (f"**{md(r.model)}**, judge {md(r.judge)}{scr}: {verdict} — thinking {pct(r.thinking_unsafe_rate)} "
         f"{ci(r.thinking_ci_low, r.thinking_ci_high)} vs answer {pct(r.answer_unsafe_rate)} "
         f"{ci(r.answer_ci_low, r.answer_ci_high)} unsafe on the same {num(r.n)} traces; difference "
         f"{pp(r.rate_diff, r.diff_ci_low, r.diff_ci_high)} pp, exact McNemar p {pval(r.mcnemar_p)} "
         f"(Holm {pval(r.mcnemar_p_holm)}). Harmful thinking behind a safe answer (hidden risk): "
         f"{num(r.thinking_only)} traces, {pct(r.hidden_risk_rate)} {ci(r.hidden_ci_low, r.hidden_ci_high)}{scr}.")
    if r.n_unpaired:
        s += f" {num(r.n_unpaired)} traces without both segments judged are not in this comparison."
    return s
