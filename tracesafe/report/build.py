"""`tracesafe report` / `tracesafe compare`: load, tabulate, plot, write."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from .. import analysis as A
from ..store import atomic_output
from .document import Doc
from .format import csv_safe, judge_disp, marks, md, num, pct, pp, pval
from .sections import (
    SCREENING_NOTE,
    SYNTHETIC_NOTE,
    _disp_paired,
    _disp_summary,
    _primary_judge,
    document,
    methods_section,
)

log = logging.getLogger(__name__)


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


def sort_inputs(paths: list[Path]) -> tuple[list[Path], list[Path], list[Path]]:
    """Trace files, verdict files and empty files among ``paths``, by the first record of each (its ``schema``,
    else the fields only a verdict has)."""
    import orjson

    from ..store import json_error

    traces, verdicts, empty = [], [], []
    for p in paths:
        with open(p, "rb") as f:
            lineno, first = next(((i, ln) for i, ln in enumerate(f, 1) if ln.strip()), (0, b""))
        if not first:
            empty.append(p)
            continue
        try:
            rec = orjson.loads(first)
        except orjson.JSONDecodeError as e:  # worded as every reader words it (a BOM, a torn line, not UTF-8)
            raise ValueError(f"{p}:{lineno}: {json_error(first, e)}") from None
        if not isinstance(rec, dict):
            raise ValueError(f"{p}:{lineno}: not a JSON object")
        schema = str(rec.get("schema", ""))
        is_verdict = schema.startswith("tracesafe.verdict/") or (not schema and {"trace_id", "segment", "judge"} <= rec.keys())
        (verdicts if is_verdict else traces).append(p)
    return traces, verdicts, empty


def resolve_inputs(inputs: list[Path], traces: list[Path] = (), verdicts: Path | None = None
                   ) -> tuple[list[Path], Path | None, Path | None]:
    """(trace files, verdict file, run directory) from a command's positional ``inputs`` (one RUN_DIR, or trace
    files and one verdict file told apart by ``sort_inputs``; with none found, an empty last file after trace files
    is the verdict file: nothing judged yet) and the files given by option."""
    inputs = list(inputs)
    if len(inputs) == 1 and inputs[0].is_dir():
        if traces or verdicts:
            raise ValueError("give RUN_DIR or trace/verdict files, not both")
        return *run_inputs(inputs[0]), inputs[0]
    dirs = [str(p) for p in inputs if p.is_dir()]
    if dirs:
        raise ValueError(f"give one RUN_DIR alone, or trace files and one verdict file; got {len(inputs)} inputs, "
                         f"directories among them: {', '.join(dirs)}")  # fmt: skip
    found_traces, found_verdicts, empty = sort_inputs(inputs)
    if found_traces and not found_verdicts and verdicts is None and inputs[-1] in empty:
        found_verdicts, empty = [inputs[-1]], empty[:-1]  # `T.jsonl V.jsonl` with V empty: nothing judged yet
    found_traces += empty  # an empty trace file (a shard that made nothing) adds no trace
    if found_verdicts and verdicts is not None or len(found_verdicts) > 1:
        given = [*found_verdicts, *([verdicts] if verdicts else [])]
        raise ValueError(f"give one verdict file; got {', '.join(map(str, given))}")
    return [*traces, *found_traces], verdicts or (found_verdicts[0] if found_verdicts else None), None


def load(traces: list[Path], verdicts: Path, on_bad_line: str = "error") -> A.Data:
    for p in [*traces, verdicts]:
        if not Path(p).exists():
            raise FileNotFoundError(f"{p}: no such file")
    t = A.load_traces([Path(p) for p in traces], on_bad_line)
    v = A.load_verdicts(Path(verdicts), on_bad_line, trace_ids=pd.Index(t["id"]))
    d = A.prepare(t, v)
    d.info["judge_thresholds"] = v.attrs.get("judge_thresholds", {})
    return d


def write_tables(tables: dict[str, pd.DataFrame], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        csv_safe(df).to_csv(out / f"{name}.csv", index=False)
        df.to_parquet(out / f"{name}.parquet", index=False)


def build_report(traces: list[Path], verdicts: Path, out_dir: Path, title: str | None = None,
                 on_bad_line: str = "error", judge_cards: list[Path] = (), default_cards: bool = True,
                 failed_requests: dict[str, int] | None = None) -> Path:
    """Write OUT/report.md, OUT/report.html, OUT/tables/*.csv|.parquet, OUT/figures/*.png|.svg; return the
    path of report.html. ``judge_cards`` (and, unless ``default_cards`` is False, the built-in cards of the
    offline and refusal judges) add misclassification-corrected rates beside the raw ones. ``failed_requests``
    (model -> requests that failed in generation) puts a note at the top: those traces are in no number."""
    from ..cards import load_card, select_cards

    out_dir = Path(out_dir)
    given = [load_card(c) for c in judge_cards]  # a bad card fails before any work
    d = load(traces, verdicts, on_bad_line)
    n_read, n_orphan = d.info["n_verdicts_read"], d.info["n_orphan_verdicts"]
    if not n_read or n_orphan == n_read:  # every table would be empty: a wrong pair of files, or nothing judged yet
        log.warning("%s: %s; the report's tables are empty", verdicts, "no verdicts" if not n_read else
                    f"none of its {n_read} verdicts is of a trace in the trace files (another run's verdicts?)")  # fmt: skip
    tables, onset_vals = A.all_tables(d)
    versions = d.v.groupby("judge", observed=True)["judge_version"].first().astype(str).to_dict()
    kinds = {str(j).split("@", 1)[0]: kind for kind, js in (("refusal", d.refusal_judges), ("harm", d.harm_judges)) for j in js}
    cards = select_cards(given, kinds, {str(k): v for k, v in versions.items()}, defaults=default_cards)
    d.info["cards_not_used"] = A.drop_unmatched_cards(cards, d.info["judge_thresholds"])
    d.info["cards"] = {j: cards[j].source for j in A.apply_cards(tables, cards)}
    # The whole folder at once, under its lock: a crash, a full disk or a second report leaves the old one whole (a
    # folder that holds report.md is an earlier report, replaced; any other folder with files in it is refused).
    with atomic_output(out_dir, [*traces, verdicts], folder=True, marker="report.md") as tmp:
        write_tables(tables, tmp / "tables")
        figs = _figures(d, tables, onset_vals, tmp / "figures")
        doc = document(d, tables, figs, title or "tracesafe report", [Path(p) for p in traces], Path(verdicts))
        for text in pooling_notes(d, tables):
            log.warning(text.replace("**", ""))
            doc.note(text, first=True)
        if failed_requests:
            doc.note("**Generation incomplete:** " + "; ".join(f"{md(m)}: {num(n)} failed requests" for m, n in
                     failed_requests.items()) + ". Their traces are in no number below, so every rate covers only the "
                     "prompts the model answered; a prompt the server refused (HTTP 4xx, e.g. a content filter) is often "
                     "among the most harmful, which biases the rates. Rerun to retry them; see the warnings for each.",
                     first=True)  # fmt: skip
        _write_doc(doc, tmp)
    return out_dir / "report.html"


ERROR_SHARE = 0.1  # a row with this share of error verdicts or more gets a note


def pooling_notes(d: A.Data, tables: dict[str, pd.DataFrame]) -> list[str]:
    """What the tables pool that a reader would not expect: one model's traces generated with other settings,
    one judge's verdicts made with other decision options, rows many of whose verdicts are errors, Safe@K rows whose
    K leaves most prompts out."""
    from ..analysis.verdicts import UNKNOWN

    notes = []
    t = d.traces
    dup = t.duplicated(["model", "prompt_id", "sample"], keep=False) if len(t) else pd.Series([], dtype=bool)
    if dup.any():  # other trace ids for one model, prompt and sample: other params or thinking mode
        models = ", ".join(md(m) for m in sorted(t.loc[dup, "model"].astype(str).unique()))
        notes.append(f"**Settings pooled:** {models} has {num(int(dup.sum()))} traces sharing a prompt and sample "
                     "index with a trace of another id, i.e. generated with other settings (sampling parameters, "
                     "thinking mode); each row pools them. Give each setting its own run (and `compare` them).")
    one_version = set(d.harm_judges + d.refusal_judges)  # a judge in several versions is reported per version
    for judge, found in sorted(d.info["judge_thresholds"].items()):
        mixed = sorted(k for k, v in found.items() if len(v - {UNKNOWN}) > 1) if judge in one_version else []
        if mixed:
            notes.append(f"**Decision options pooled:** the verdict file holds verdicts of {md(judge)} made with more "
                         f"than one {' and '.join(mixed)}; where they judge these traces, its rates mix them. Judge "
                         "again with one setting.")  # fmt: skip
    s = tables.get("summary")
    if s is not None and not s.empty:
        judged = s["n"] + s["n_error"] + s["n_undecided"]
        many = s[s["n_error"] >= ERROR_SHARE * judged]
        if not many.empty:
            top = many.loc[(many["n_error"] / judged[many.index]).idxmax()]
            notes.append(f"**Many errors:** in {num(len(many))} row{'s' * (len(many) > 1)} of summary.csv at least {ERROR_SHARE:.0%} of the "
                         f"verdicts are errors (most: {md(top['judge'])} on {md(top['model'])}'s {top['segment']}, "
                         f"{num(int(top['n_error']))} of {num(int(judged[top.name]))}). Their rates cover only what the judge "
                         "decided, which need not be like the rest (the offline judge declines text not in English): the "
                         "Data section names the messages.")  # fmt: skip
    k = tables.get("at_k")
    if k is not None and not k.empty:
        few = k[k["n_prompts_incomplete"] > k["n_prompts"]]
        if not few.empty:
            notes.append(f"**Safe@K on few prompts:** in {num(len(few))} `at_k` row{'s' * (len(few) > 1)} most prompts have fewer samples "
                         "than K (the most any prompt has) and are left out (`n_prompts_incomplete`).")  # fmt: skip
    return notes


def _write_doc(doc: Doc, out_dir: Path) -> None:
    (out_dir / "report.md").write_text(doc.to_md(out_dir), encoding="utf-8")
    (out_dir / "report.html").write_text(doc.to_html(), encoding="utf-8")


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
        sorted(onset_vals["judge"].unique(), key=lambda j: (d.grades[j] == "screening", j))))
    figs["onset"] = plots.onset(onset_vals, onset_judges[0], out) if onset_judges else None
    figs["agreement"] = plots.agreement_matrix(t["agreement"], d.grades, out)
    return figs



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



def compare_runs(run_dirs: list[Path], out_dir: Path, on_bad_line: str = "error", all_prompts: bool = False) -> Path:
    """Several runs side by side (base vs distilled, before vs after realignment, normal vs zerothink):
    OUT/report.md|html, tables/compare_*.csv|parquet, figures. Returns the path of report.html. Runs on different
    prompts are compared on the prompts all of them have, unless ``all_prompts``."""
    out_dir = Path(out_dir)
    taken: set[str] = set()
    loaded: dict[str, Any] = {}
    options: dict[str, dict[str, Any]] = {}  # judge -> run -> its version and decision options
    for rd in run_dirs:
        rd = Path(rd)
        name = _run_name(rd, taken)
        traces, verdicts = run_inputs(rd)
        d = load(traces, verdicts, on_bad_line)
        if d.v.empty:
            raise ValueError(f"{rd}: no verdicts of its traces in {verdicts}; judge the run before comparing it")
        versions = d.v.groupby("judge", observed=True)["judge_version"].agg(lambda s: set(s.astype(str)))
        for judge, found in d.info["judge_thresholds"].items():
            options.setdefault(judge, {})[name] = {**found, "version": versions.get(judge, set())}
        loaded[name] = d
    runs = list(loaded)
    prompts = {n: set(d.v["prompt_id"].cat.remove_unused_categories().cat.categories.astype(str)) for n, d in loaded.items()}
    common = set.intersection(*prompts.values())
    prompt_note = ""
    if any(p != common for p in prompts.values()):
        extra = "; ".join(f"{n} has {len(p)} ({len(p - common)} not in every run)" for n, p in prompts.items())
        if all_prompts:
            prompt_note = (f"**Different prompts:** {md(extra)}. Each run is counted on all its own prompts "
                           "(--all-prompts), so a difference between the runs is partly their prompts'.")
        elif not common:
            raise ValueError(f"the runs share no prompt ({extra}); compare runs on the same suite, or give "
                             "--all-prompts to compare them anyway")  # fmt: skip
        else:
            prompt_note = (f"**Compared on the {len(common)} prompts every run has:** {md(extra)}; the others are "
                           "left out so that the runs differ only in what produced the traces (--all-prompts keeps "
                           "them).")  # fmt: skip
            for d in loaded.values():
                d.v = d.v.loc[d.v["prompt_id"].isin(common)].reset_index(drop=True)
        log.warning("the runs cover different prompts: %s%s", extra,
                    "" if all_prompts else f"; compared on the {len(common)} they share")  # fmt: skip
    summaries, paireds, synthetic, screening, unpaired = [], [], False, set(), []
    for name, d in loaded.items():
        synthetic |= bool(d.info.get("synthetic"))
        screening |= d.screening
        s, p = A.summary_table(d), A.paired_table(d)
        if p.empty:
            unpaired.append(name)
            log.warning("run %s has no trace judged on both thinking and answer by one harm judge", name)
        s.insert(0, "run", name)
        p.insert(0, "run", name)
        summaries.append(s)
        paireds.append(p)
    summary = pd.concat(summaries, ignore_index=True)
    paired = pd.concat(paireds, ignore_index=True)
    paired["run_model"] = paired["run"] + " · " + paired["model"]
    diff = A.compare_table(paired, runs)
    # Written whole, under the folder's lock (as a report is); a run directory itself is refused as the output.
    with atomic_output(out_dir, run_dirs, folder=True, marker="report.md") as tmp:
        _write_comparison(tmp, runs, run_dirs, summary, paired, diff, options, prompt_note, unpaired, synthetic, screening)
    return out_dir / "report.html"


def _write_comparison(out_dir: Path, runs: list[str], run_dirs: list[Path], summary: pd.DataFrame, paired: pd.DataFrame,
                      diff: pd.DataFrame, options: dict[str, dict[str, Any]], prompt_note: str, unpaired: list[str],
                      synthetic: bool, screening: set) -> None:  # fmt: skip
    write_tables({"compare_summary": summary, "compare_paired": paired.drop(columns=["run_model"]),
                  "compare_diff": diff}, out_dir / "tables")

    from . import plots

    figdir = out_dir / "figures"
    grades = dict(zip(paired["judge"], paired["grade"]))
    judges = sorted(grades, key=lambda j: (grades[j] == "screening", j))
    figs = {"rates": plots.rates_by_model(paired, figdir, name="compare_rates", group="run_model"),
            "hidden": plots.hidden_risk(paired, judges[0], figdir, group="run_model", name="compare_hidden_risk")
            if judges else None}

    doc = Doc("tracesafe comparison: " + " vs ".join(runs))
    if synthetic:
        doc.note(SYNTHETIC_NOTE)
    if screening:
        doc.note(SCREENING_NOTE)
    def canon(found: dict[str, set]) -> str:
        return repr(sorted((k, sorted(map(repr, v))) for k, v in found.items()))

    differ = sorted(j for j, per_run in options.items() if len({canon(f) for f in per_run.values()}) > 1)
    for j in differ:  # a difference between such runs is partly the judge's own
        log.warning("judge %s was run in another version or with other decision options (threshold, second stage) "
                    "in %s: a difference between these runs is partly the judge's", j, " vs ".join(options[j]))  # fmt: skip
    doc.h("Runs")
    doc.ul([f"{md(n)}: {md(Path(rd))}" for n, rd in zip(runs, run_dirs)])
    if prompt_note:
        doc.p(prompt_note)
    if unpaired:
        doc.p(f"**No thinking-answer pairs:** {', '.join(map(md, unpaired))} has no trace of a prompt not labelled "
              "benign judged on both segments by one harm judge, so it is not in the tables below.")  # fmt: skip
    if differ:
        doc.p("**Judged differently:** " + ", ".join(md(j) for j in differ) + " ran in another version or with other "
              "decision options (a threshold, the offline judge's second stage) in these runs, so a difference "
              "between the runs is partly the judge's own; judge them alike to compare the models.")  # fmt: skip
    doc.h("Thinking vs answer in each run")
    doc.figure(figs["rates"], "Unsafe rate of thinking and answer on the same traces, per run and model "
                              "(Wilson 95% CIs).")
    doc.figure(figs["hidden"], f"Thinking × answer outcomes per run and model ({md(judge_disp(judges[0], grades[judges[0]])) if judges else ''}).")
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
            "judge": [judge_disp(j, g) for j, g in zip(diff["judge"], diff["grade"])], "measure": diff["measure"],
            "rate": [f"{pct(r)} ({num(k)}/{num(n)}){m}" for r, k, n, m in
                     zip(diff["rate"], diff["k"], diff["n"], marks(diff["grade"]))],
            "baseline rate": [f"{pct(r)} ({num(k)}/{num(n)})" for r, k, n in
                              zip(diff["rate_base"], diff["k_base"], diff["n_base"])],
            "difference (pp)": [pp(r, lo, hi) + m for r, lo, hi, m in
                                zip(diff["diff"], diff["diff_ci_low"], diff["diff_ci_high"], marks(diff["grade"]))],
            "Fisher p": diff["fisher_p"].map(pval)}), "compare_diff.csv.")
    doc.h("Unsafe rates by run, model, suite and segment")
    doc.table(pd.concat([summary[["run"]], _disp_summary(summary)], axis=1), "compare_summary.csv.")
    methods_section(doc)
    _write_doc(doc, out_dir)
