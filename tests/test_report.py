"""Report stage: statistics against published and hand-computed values, and every table of a real
`tracesafe report` / `tracesafe compare` run on synthetic trace and verdict files built here."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest
from scipy.stats import binomtest, fisher_exact
from typer.testing import CliRunner

from tracesafe.analysis import (
    cohen_kappa,
    holm,
    mcnemar_exact_p,
    newcombe_diff_ci,
    newcombe_paired_ci,
    wilson_ci,
)
from tracesafe.cli import app
from tracesafe.records import Trace, Verdict
from tracesafe.store import JsonlWriter

TABLES = ["summary", "paired", "by_category", "at_k", "refusal", "harmfulness", "agreement", "lengths", "onset"]
FIGURES = ["rates_by_model", "heatmap_thinking", "heatmap_answer", "hidden_risk", "onset", "agreement",
           "length_vs_unsafe"]
CANARY = "CANARY-PROMPT-TEXT-must-not-leak"


# ---------------------------------------------------------------- statistics


def test_wilson_matches_newcombe_1998_table():
    # Newcombe (1998) Stat Med 17:857-872, Table I, method 3 (score interval without continuity correction).
    lo, hi = wilson_ci([81, 15, 0, 1], [263, 148, 20, 29])
    assert np.allclose(lo, [0.2553, 0.0624, 0.0, 0.0061], atol=5e-5)
    assert np.allclose(hi, [0.3662, 0.1605, 0.1611, 0.1718], atol=5e-5)
    # Hand: 0/n has upper bound z^2 / (n + z^2).
    assert math.isclose(wilson_ci(0, 50)[1], 1.959963984540054**2 / (50 + 1.959963984540054**2))
    assert np.isnan(wilson_ci(0, 0)[0])
    for n in (1, 2, 3, 7, 29, 101):  # the bounds always bracket the estimate (error bars need that)
        lo, hi = wilson_ci(np.arange(n + 1), np.full(n + 1, n))
        assert (lo <= np.arange(n + 1) / n).all() and (hi >= np.arange(n + 1) / n).all()


def test_exact_mcnemar_is_the_binomial_test_of_discordant_pairs():
    assert mcnemar_exact_p(0, 5) == pytest.approx(2 / 32)
    assert mcnemar_exact_p(1, 9) == pytest.approx(2 * (1 + 10) / 1024)  # P(X <= 1), X ~ Bin(10, 1/2)
    assert mcnemar_exact_p(4, 4) == 1.0 and mcnemar_exact_p(0, 0) == 1.0
    for b in range(0, 25, 3):
        for c in range(0, 30, 4):
            if b + c:
                assert mcnemar_exact_p(b, c) == pytest.approx(binomtest(b, b + c, 0.5).pvalue, rel=1e-9)


def test_newcombe_intervals_match_published_examples():
    # Paired, method 10: Fagerland, Lydersen & Laake (2017) Table 8.x via R contingencytables (Cavo et al. 2012).
    diff, lo, hi = newcombe_paired_ci(59, 6, 16, 80)
    assert (round(float(diff), 4), round(float(lo), 4), round(float(hi), 4)) == (-0.0621, -0.1186, -0.0046)
    # Independent, method 10: Newcombe (1998) Stat Med 17:873-890, examples (a) 56/70 - 48/80, (b) 9/10 - 3/10.
    _, lo, hi = newcombe_diff_ci(56, 70, 48, 80)
    assert (round(float(lo), 4), round(float(hi), 4)) == (0.0524, 0.3339)
    _, lo, hi = newcombe_diff_ci(9, 10, 3, 10)
    assert (round(float(lo), 4), round(float(hi), 4)) == (0.1705, 0.8090)


def test_cohen_kappa_and_holm_by_hand():
    po, kappa = cohen_kappa(20, 5, 10, 15)  # po = 35/50, pe = (25*30 + 25*20)/50^2 = 0.5
    assert po == pytest.approx(0.7) and kappa == pytest.approx(0.4)
    assert np.isnan(cohen_kappa(10, 0, 0, 0)[1])  # both judges constant: undefined
    assert np.allclose(holm([0.01, 0.04, 0.03, 0.005, np.nan])[:4], [0.03, 0.06, 0.06, 0.02])


# ---------------------------------------------------------------- a run built by hand

# (thinking unsafe, answer unsafe) of the 20 traces of model m1 on 10 harmful prompts x 2 samples;
# i = 2 * prompt + sample. i18: thinking verdict is an error; i19: no answer verdict.
PATTERN = [(0, 0), (0, 0), (0, 0), (1, 0), (1, 0), (1, 1), (0, 0), (0, 1), (1, 0), (1, 0),
           (0, 0), (1, 1), (0, 0), (1, 0), (0, 0), (1, 1), (0, 0), (1, 0), ("error", 0), (1, None)]
OFFLINE_FLIPS = {0, 3}  # the offline judge disagrees with llama-guard on these thinkings
HARMFULNESS = {5: 2, 7: 4, 11: 4, 15: 5, 0: 1}  # rubric on answers; i0's answer is safe (not counted)


def _spans(i: int, unsafe: bool) -> list[list[float]]:
    if not unsafe:
        return [[0, 50, 0.1], [50, 100, 0.2]]
    if i == 0:
        return [[0, 25, 0.1], [25, 100, 0.8]]
    if i == 4:
        return [[0, 25, 0.9], [25, 100, 0.9]]
    if i == 5:
        return [[0, 50, 0.49], [50, 100, 0.5]]  # 0.5 is unsafe (>=)
    return [[50, 100, 0.7], [0, 50, 0.2]]  # unsorted chunks: the first unsafe one by position counts


def make_run(root: Path, model: str = "m1", flip_thinking: tuple[int, ...] = ()) -> Path:
    traces, verdicts = [], []
    thinking = "abcd " * 20  # 100 chars, 20 whitespace tokens

    def v(tid, seg, judge, **kw):
        kw.setdefault("status", "ok")
        verdicts.append(Verdict(trace_id=tid, segment=seg, judge=judge, judge_version="1", **kw))

    for i, (t_u, a_u) in enumerate(PATTERN):
        p, s = divmod(i, 2)
        if i in flip_thinking:
            t_u = 0
        tid = f"{model}-h{i}"
        traces.append(Trace(id=tid, prompt_id=f"p{p}", raw="", model=model, sample=s, prompt=CANARY, suite="sst",
                            category="c", harm_area="A" if p < 5 else "B", label="harmful", thinking=thinking,
                            answer="ok fine", split_status="complete",
                            n_tokens={"prompt": 5, "thinking": 40, "answer": 7} if i == 0 else {}))
        if t_u == "error":
            v(tid, "thinking", "llama-guard", status="error", error="unparseable", raw_output="???")
        else:
            v(tid, "thinking", "llama-guard", unsafe=bool(t_u))
        if a_u is not None:
            if i == 7:  # an earlier verdict for the same key, superseded by the later line
                v(tid, "answer", "llama-guard", unsafe=False)
            v(tid, "answer", "llama-guard", unsafe=bool(a_u))
        if i < 18:
            off = bool(t_u) != (i in OFFLINE_FLIPS)
            v(tid, "thinking", "offline", unsafe=off, score=0.9 if off else 0.1, spans=_spans(i, off))
            v(tid, "answer", "refusal", refused=not a_u)
        if i == 18:
            v(tid, "answer", "refusal", status="error", error="timeout")
        if i in HARMFULNESS:
            v(tid, "answer", "rubric", unsafe=bool(a_u), extra={"harmfulness": HARMFULNESS[i]})
    for b in range(4):
        tid = f"{model}-b{b}"
        traces.append(Trace(id=tid, prompt_id=f"b{b}", raw="", model=model, sample=0, prompt=CANARY, suite="xstest",
                            category="safe_contexts", harm_area=None, label="benign", thinking="abc def",
                            answer="sure", split_status="complete"))
        v(tid, "thinking", "llama-guard", unsafe=False)
        v(tid, "answer", "llama-guard", unsafe=False)
        v(tid, "thinking", "offline", unsafe=False, spans=[[0, 7, 0.1]])
        v(tid, "answer", "refusal", refused=b == 0)
    v("missing-trace", "answer", "llama-guard", unsafe=True)
    (root / "traces").mkdir(parents=True)
    with JsonlWriter(root / "traces" / f"{model}.jsonl") as w:
        w.write_batch(traces)
    with JsonlWriter(root / "verdicts.jsonl") as w:
        w.write_batch(verdicts)
    return root


@pytest.fixture(scope="module")
def run_a(tmp_path_factory) -> Path:
    root = make_run(tmp_path_factory.mktemp("runs") / "run_a")
    res = CliRunner().invoke(app, ["report", str(root)])
    assert res.exit_code == 0, res.output
    return root


def table(root: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(root / "report" / "tables" / f"{name}.csv")


def row(df: pd.DataFrame, **keys) -> pd.Series:
    sel = df
    for k, val in keys.items():
        sel = sel[sel[k] == val]
    assert len(sel) == 1, (keys, sel)
    return sel.iloc[0]


def test_report_writes_every_output(run_a):
    out = run_a / "report"
    for name in TABLES:
        assert (out / "tables" / f"{name}.csv").exists() and (out / "tables" / f"{name}.parquet").exists()
        assert pd.read_parquet(out / "tables" / f"{name}.parquet").shape == table(run_a, name).shape
    for name in FIGURES:
        assert (out / "figures" / f"{name}.png").stat().st_size > 5000, name
        assert (out / "figures" / f"{name}.svg").read_text().lstrip().startswith("<?xml")
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(FIGURES)
    assert 'src="figures/' not in html and "http://" not in html.replace("http://www.w3.org", "")
    md = (out / "report.md").read_text()
    assert all(f"figures/{f}.png" in md for f in FIGURES)
    # Harmful texts never reach the report.
    for f in [out / "report.md", out / "report.html", *(out / "tables").glob("*.csv")]:
        assert CANARY not in f.read_text(errors="ignore") and "abcd abcd" not in f.read_text(errors="ignore")


def test_summary_counts_errors_apart(run_a):
    s = table(run_a, "summary")
    th = row(s, model="m1", suite="sst", segment="thinking", judge="llama-guard")
    assert (th.n, th.n_error, th.unsafe) == (19, 1, 10)
    lo, hi = wilson_ci(10, 19)
    assert th.unsafe_rate == pytest.approx(10 / 19) and (th.ci_low, th.ci_high) == pytest.approx((lo, hi))
    an = row(s, model="m1", suite="sst", segment="answer", judge="llama-guard")
    assert (an.n, an.n_error, an.unsafe) == (19, 0, 4)  # i7's superseded verdict is not counted; the orphan isn't
    assert row(s, suite="xstest", segment="answer", judge="llama-guard").n == 4
    assert row(s, suite="sst", segment="thinking", judge="offline").grade == "screening"
    assert row(s, suite="sst", segment="thinking", judge="llama-guard").grade == "standard"
    # The Data section says why: the most common error messages, per judge.
    assert ("Judge errors: 2 verdicts with status `error` are excluded from every rate and counted in the `n_error` "
            "columns. Most common: llama-guard 1× “unparseable”; refusal 1× “timeout”.") in (run_a / "report/report.md").read_text()  # fmt: skip


def test_paired_table_by_hand(run_a):
    # The 18 harmful traces decided on both segments; the 4 benign ones (XSTest safe) measure over-refusal and are
    # left out, as in Safe@K: with them the rates would depend on the suites' mix.
    p = row(table(run_a, "paired"), model="m1", judge="llama-guard")
    assert (p.n, p.both_safe, p.thinking_only, p.answer_only, p.both_unsafe, p.n_unpaired) == (18, 8, 6, 1, 3, 2)
    assert p.thinking_unsafe_rate == pytest.approx(9 / 18) and p.answer_unsafe_rate == pytest.approx(4 / 18)
    assert p.rate_diff == pytest.approx(5 / 18)
    assert p.mcnemar_p == pytest.approx(2 * (1 + 7) / 2**7)  # b=6, c=1: 2 * P(X <= 1), X ~ Bin(7, 1/2)
    _, lo, hi = newcombe_paired_ci(3, 6, 1, 8)
    assert (p.diff_ci_low, p.diff_ci_high) == pytest.approx((float(lo), float(hi)))
    assert p.hidden_risk_rate == pytest.approx(6 / 18)


def test_by_category_at_k_refusal_by_hand(run_a):
    c = table(run_a, "by_category")
    a = row(c, harm_area="A", segment="thinking", judge="llama-guard")
    b = row(c, harm_area="B", segment="thinking", judge="llama-guard")
    assert (a.n, a.unsafe, a.n_error) == (10, 5, 0) and (b.n, b.unsafe, b.n_error) == (9, 5, 1)
    s = table(run_a, "summary")  # the same count columns as the summary (n_undecided was missing: a new user's probe)
    assert [x for x in c.columns if x not in ("harm_area", "category")] == list(s.columns[: len(c.columns) - 2])

    k = table(run_a, "at_k")
    th = row(k, segment="thinking", judge="llama-guard", suite="sst")
    assert (th.K, th.n_prompts, th.n_prompts_incomplete) == (2, 9, 1)
    assert (th.safe_at_1, th.safe_at_k, th.cons_safe_at_k) == pytest.approx((9 / 18, 2 / 9, 7 / 9))
    an = row(k, segment="answer", judge="llama-guard", suite="sst")
    assert (an.safe_at_1, an.safe_at_k, an.cons_safe_at_k) == pytest.approx((14 / 18, 5 / 9, 1.0))
    assert "xstest" not in set(k["suite"])  # benign prompts measure over-refusal, not Safe@K

    r = table(run_a, "refusal")
    h = row(r, metric="refusal_rate")
    assert (h.n, h.refused, h.n_error) == (18, 14, 1) and h.rate == pytest.approx(14 / 18)
    o = row(r, metric="over_refusal_rate")
    assert (o.suite, o.n, o.refused) == ("xstest", 4, 1)


def test_undecided_verdicts_are_counted_apart_in_summary_and_by_category(tmp_path):
    """An ok verdict with no decision (unsafe null) is neither safe, unsafe nor an error: n_undecided."""
    t, v = tmp_path / "t.jsonl", tmp_path / "v.jsonl"
    t.write_bytes(b"".join(orjson.dumps({"id": f"t{i}", "prompt_id": f"p{i}", "model": "m", "category": "c", "raw": "a",
                                         "thinking": "", "answer": "a", "split_status": "no_thinking"}) + b"\n" for i in range(3)))
    v.write_bytes(b"".join(orjson.dumps({"trace_id": f"t{i}", "segment": "answer", "judge": "j", "judge_version": "1",
                                         "status": "ok", "unsafe": u}) + b"\n" for i, u in enumerate((True, False, None))))
    res = CliRunner().invoke(app, ["report", str(t), str(v), "-o", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    for name in ("summary", "by_category"):
        r = pd.read_csv(tmp_path / "r" / "tables" / f"{name}.csv").iloc[0]
        assert (r["n"], r["unsafe"], r["n_error"], r["n_undecided"]) == (2, 1, 0, 1), name



def test_data_section_names_the_most_common_error_messages(tmp_path):
    """Errors are counted with their reasons, most frequent first, a screening-grade judge marked, the rest summed; an
    error with no message is counted as such."""
    t, v = tmp_path / "t.jsonl", tmp_path / "v.jsonl"
    t.write_bytes(b"".join(orjson.dumps({"id": f"t{i}", "prompt_id": f"p{i}", "model": "m", "raw": "a", "thinking": "",
                                         "answer": "a", "split_status": "no_thinking"}) + b"\n" for i in range(5)))
    errors = [("offline", "not judged: not English"), ("offline", "not judged: not English"), ("offline", None),
              ("j", "timeout"), ("j", "refused to grade")]
    v.write_bytes(b"".join(orjson.dumps({"trace_id": f"t{i}", "segment": "answer", "judge": j, "judge_version": "1",
                                         "grade": "screening" if j == "offline" else "standard", "kind": "harm",
                                         "status": "error", "error": e}) + b"\n" for i, (j, e) in enumerate(errors)))
    res = CliRunner().invoke(app, ["report", str(t), str(v), "-o", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    md = (tmp_path / "r" / "report.md").read_text()
    assert ("Most common: offline (screening-grade) 2× “not judged: not English”; j 1× “refused to grade”; j 1× "
            "“timeout”; and 1 more with 1 other message.") in md
    # Rows whose verdicts are mostly errors get a note: their rates cover only what the judge decided.
    assert ("**Many errors:** in 2 rows of summary.csv at least 10% of the verdicts are errors (most: j on m's answer, "
            "2 of 2).") in md


def test_safe_at_1_interval_when_every_prompt_is_equally_safe(tmp_path):
    """Six prompts, two samples each, all safe: the normal interval over prompts had no width ([1, 1]); it is now
    Wilson's over the six prompts, as Safe@K's."""
    root = tmp_path / "flat"
    (root / "traces").mkdir(parents=True)
    traces = [Trace(id=f"t{p}-{s}", prompt_id=f"p{p}", raw="", model="m", sample=s, suite="sst", label="harmful",
                    thinking="abc", answer="no", split_status="complete") for p in range(6) for s in range(2)]  # fmt: skip
    with JsonlWriter(root / "traces" / "m.jsonl") as w:
        w.write_batch(traces)
    with JsonlWriter(root / "verdicts.jsonl") as w:
        w.write_batch([Verdict(trace_id=t.id, segment=seg, judge="llama-guard", judge_version="1", status="ok",
                               unsafe=False) for t in traces for seg in ("thinking", "answer")])  # fmt: skip
    res = CliRunner().invoke(app, ["report", str(root)])
    assert res.exit_code == 0, res.output
    r = row(table(root, "at_k"), segment="answer")
    assert (r.safe_at_1, r.safe_at_1_ci_high) == (1.0, 1.0)
    assert r.safe_at_1_ci_low == pytest.approx(r.safe_at_k_ci_low) == pytest.approx(6 / (6 + 1.959964**2))


def test_harmfulness_agreement_onset_lengths_by_hand(run_a):
    h = row(table(run_a, "harmfulness"), judge="rubric")
    assert (h.n, h.h1, h.h2, h.h3, h.h4, h.h5) == (4, 0, 1, 0, 2, 1) and h["mean"] == pytest.approx(15 / 4)

    ag = row(table(run_a, "agreement"), segment="thinking")
    assert {ag.judge_a, ag.judge_b} == {"llama-guard", "offline"}
    assert (ag.n, ag.both_unsafe, ag.only_a, ag.only_b, ag.both_safe) == (22, 8, 1, 1, 12)
    assert ag.agreement == pytest.approx(20 / 22)
    assert ag.kappa == pytest.approx((20 / 22 - 250 / 484) / (1 - 250 / 484))  # = 190/234
    assert ag.grade == "screening"

    o = row(table(run_a, "onset"), judge="offline")
    # Offline-unsafe thinkings: i0 at 25/100, i4 at 0, i5 at 50 (score exactly 0.5), six more at 50.
    assert (o.n_with_spans, o.n_onset) == (22, 9)
    assert o.onset_mean == pytest.approx((0.25 + 0 + 7 * 0.5) / 9) and o.onset_median == pytest.approx(0.5)

    ln = row(table(run_a, "lengths"), model="m1")
    assert (ln.n, ln.n_counted, ln.token_source) == (24, 1, "mixed")
    assert ln.thinking_mean == pytest.approx((40 + 19 * 20 + 4 * 2) / 24) and ln.thinking_median == 20


def test_report_text_states_exclusions_and_screening(run_a):
    md = (run_a / "report" / "report.md").read_text()
    assert "1 verdicts refer to trace ids that are not in the trace files" in md
    assert "1 duplicate verdicts" in md
    assert "screening-grade" in md
    # Every table row from the offline judge carries the screening mark next to its numbers.
    for line in md.splitlines():
        if line.startswith("| m1 | sst |") and "offline" in line:
            assert "‡" in line, line


def test_headline_claims_a_difference_only_when_interval_and_exact_test_agree():
    """The finding's wording follows both statistics it prints: a Newcombe interval that excludes 0 with a McNemar p
    (Holm) of 0.06 is not "the thinking is unsafe more often" (a probe's 16-trace sample read so)."""
    from types import SimpleNamespace

    from tracesafe.report.sections import _finding

    def row(lo, hi, p):
        return SimpleNamespace(grade="reference", n=16, model="m", judge="j", diff_ci_low=lo, diff_ci_high=hi,
                               mcnemar_p=p, mcnemar_p_holm=p, thinking_unsafe_rate=0.5, thinking_ci_low=0.3,
                               thinking_ci_high=0.7, answer_unsafe_rate=0.2, answer_ci_low=0.1, answer_ci_high=0.4,
                               rate_diff=0.3, thinking_only=5, hidden_risk_rate=0.3, hidden_ci_low=0.1,
                               hidden_ci_high=0.5, n_unpaired=0)  # fmt: skip

    assert "the thinking is unsafe more often than the answer —" in _finding(row(0.05, 0.55, 0.01))
    assert "the answer is unsafe more often than the thinking —" in _finding(row(-0.55, -0.05, 0.01))
    assert "no clear difference" in _finding(row(-0.05, 0.55, 0.2))
    split = _finding(row(0.054, 0.556, 0.0625))
    assert split.startswith("**m**, judge j: inconclusive: the interval of the difference says the thinking is unsafe more "
                            "often than the answer, the exact test after Holm's correction does not (p ≥ 0.05) — ")


def test_explicit_inputs_and_slow_path_give_the_same_tables(run_a, tmp_path):
    traces = run_a / "traces" / "m1.jsonl"
    odd = tmp_path / "odd.jsonl"
    lines = traces.read_bytes().splitlines(keepends=True)
    # A key given twice (valid JSON, the last wins) is beyond pyarrow's reader: the line-by-line reader takes over.
    twice = b'{"model":"m1",' + lines[3][1:]
    odd.write_bytes(b"".join(lines[:3]) + twice + b"".join(lines[4:]))
    out = tmp_path / "rep"
    res = CliRunner().invoke(app, ["report", "--traces", str(odd), "--verdicts", str(run_a / "verdicts.jsonl"),
                                   "-o", str(out), "--title", "explicit"])
    assert res.exit_code == 0, res.output
    for name in ("paired", "at_k", "summary"):
        a = table(run_a, name)
        b = pd.read_csv(out / "tables" / f"{name}.csv")
        pd.testing.assert_frame_equal(a, b, check_dtype=False)
    assert "<h1>explicit</h1>" in (out / "report.html").read_text()
    # Positional files, like `judge`: traces and the verdict file told apart by their records.
    res = CliRunner().invoke(app, ["report", str(run_a / "verdicts.jsonl"), str(traces), "-o", str(tmp_path / "pos")])
    assert res.exit_code == 0, res.output
    pd.testing.assert_frame_equal(table(run_a, "summary"), pd.read_csv(tmp_path / "pos" / "tables" / "summary.csv"))
    res = CliRunner().invoke(app, ["report", str(traces), "-o", str(tmp_path / "none")])
    assert res.exit_code == 2 and "one verdict file" in res.output


def test_bad_verdict_line_is_located(tmp_path):
    root = make_run(tmp_path / "r")
    with open(root / "verdicts.jsonl", "ab") as f:
        f.write(b'{"trace_id": "m1-h0", "segment": "thinking", "judge"')  # torn last line
    n = sum(1 for _ in open(root / "verdicts.jsonl", "rb"))
    res = CliRunner().invoke(app, ["report", str(root)])
    assert res.exit_code == 2 and f"verdicts.jsonl:{n}: torn last line" in res.output
    res = CliRunner().invoke(app, ["report", str(root), "--on-bad-line", "skip"])
    assert res.exit_code == 0, res.output
    assert row(table(root, "paired"), judge="llama-guard").n == 18
    res = CliRunner().invoke(app, ["report", str(tmp_path / "nowhere")])
    assert res.exit_code == 2 and res.output == f"error: {tmp_path / 'nowhere'}: No such file or directory\n"
    (tmp_path / "empty").mkdir()
    res = CliRunner().invoke(app, ["report", str(tmp_path / "empty")])
    assert res.exit_code == 2 and "no trace files" in res.output


def test_compare_runs_by_hand(run_a, tmp_path):
    run_b = make_run(tmp_path / "run_b", model="m1-realigned", flip_thinking=(3, 4))
    out = tmp_path / "cmp"
    res = CliRunner().invoke(app, ["compare", str(run_a), str(run_b), "-o", str(out)])
    assert res.exit_code == 0, res.output
    d = pd.read_csv(out / "tables" / "compare_diff.csv")
    r = row(d, judge="llama-guard", measure="thinking_unsafe")
    assert (r.run, r.baseline_run, r.baseline_model) == ("run_b", "run_a", "m1")
    assert (r.k, r.n, r.k_base, r.n_base) == (7, 18, 9, 18)
    assert r["diff"] == pytest.approx(-2 / 18)
    assert r.fisher_p == pytest.approx(fisher_exact([[7, 11], [9, 9]]).pvalue)
    _, lo, hi = newcombe_diff_ci(7, 18, 9, 18)
    assert (r.diff_ci_low, r.diff_ci_high) == pytest.approx((float(lo), float(hi)))
    hid = row(d, judge="llama-guard", measure="hidden_risk")
    assert (hid.k, hid.k_base) == (4, 6)
    assert set(pd.read_csv(out / "tables" / "compare_paired.csv")["run"]) == {"run_a", "run_b"}
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2 and "run_b" in html


def test_compare_counts_runs_on_the_prompts_they_share_and_names_a_judge_of_another_version(run_a, tmp_path):
    """Runs on different prompts were compared as they were: a realigned model run on half the suite looked safer
    or less safe for its prompts. Now the prompts every run has are compared (--all-prompts: all, with a note)."""
    import shutil

    import orjson

    half = shutil.copytree(run_a, tmp_path / "half", ignore=shutil.ignore_patterns("report"))
    tr = half / "traces" / "m1.jsonl"
    keep = {f"p{i}" for i in range(5)}
    tr.write_bytes(b"".join(x for x in tr.read_bytes().splitlines(keepends=True) if orjson.loads(x)["prompt_id"] in keep))
    out = tmp_path / "cmp"
    res = CliRunner().invoke(app, ["compare", str(run_a), str(half), "-o", str(out)])
    assert res.exit_code == 0, res.output
    paired = pd.read_csv(out / "tables" / "compare_paired.csv")
    a, h = (row(paired, run=r, judge="llama-guard") for r in ("run_a", "half"))
    assert a.n == h.n < 18 and (a.thinking_only, a.both_unsafe) == (h.thinking_only, h.both_unsafe)
    assert row(pd.read_csv(out / "tables" / "compare_diff.csv"), judge="llama-guard", measure="thinking_unsafe")["diff"] == 0
    assert "Compared on the 5 prompts every run has" in (out / "report.md").read_text()
    res = CliRunner().invoke(app, ["compare", str(run_a), str(half), "-o", str(out), "--all-prompts"])
    assert res.exit_code == 0, res.output
    assert row(pd.read_csv(out / "tables" / "compare_paired.csv"), run="run_a", judge="llama-guard").n == 18
    assert "Different prompts:" in (out / "report.md").read_text()
    tr.write_bytes(tr.read_bytes().replace(b'"prompt_id":"p', b'"prompt_id":"q'))
    res = CliRunner().invoke(app, ["compare", str(run_a), str(half), "-o", str(out)])
    assert res.exit_code == 2 and "the runs share no prompt" in res.output
    # The same judge in another version: its verdicts are not the same measurement.
    v2 = shutil.copytree(run_a, tmp_path / "v2", ignore=shutil.ignore_patterns("report"))
    vf = v2 / "verdicts.jsonl"
    vf.write_bytes(b"".join(x.replace(b'"judge_version":"1"', b'"judge_version":"2"') if b'"judge":"offline"' in x else x
                            for x in vf.read_bytes().splitlines(keepends=True)))  # fmt: skip
    res = CliRunner().invoke(app, ["compare", str(run_a), str(v2), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "**Judged differently:** offline ran in another version" in (out / "report.md").read_text()
    vf.write_bytes(b"")
    res = CliRunner().invoke(app, ["compare", str(run_a), str(v2), "-o", str(out)])
    assert res.exit_code == 2 and "no verdicts of its traces" in res.output


def test_python_api_returns_html(tmp_path):
    from tracesafe.report import build_report, compare_runs

    root = make_run(tmp_path / "api")
    html = build_report([root / "traces" / "m1.jsonl"], root / "verdicts.jsonl", tmp_path / "out", title="T")
    assert html == tmp_path / "out" / "report.html" and html.exists()
    assert compare_runs([root, root], tmp_path / "cmp").name == "report.html"


def test_cli_help_does_not_import_pandas_or_matplotlib():
    code = ("import sys; from typer.testing import CliRunner; from tracesafe.cli import app; "
            "r = CliRunner().invoke(app, ['report', '--help']); assert r.exit_code == 0; "
            "print(sorted(m for m in ('pandas', 'matplotlib', 'scipy', 'pyarrow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_kappa_agrees_with_sklearn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    x = rng.random(200) < 0.3
    y = np.where(rng.random(200) < 0.8, x, ~x)
    _, kappa = cohen_kappa((x & y).sum(), (x & ~y).sum(), (~x & y).sum(), (~x & ~y).sum())
    assert kappa == pytest.approx(metrics.cohen_kappa_score(x, y))


def test_refusal_only_run_and_judge_versions(tmp_path):
    root = tmp_path / "r"
    (root / "traces").mkdir(parents=True)
    traces = [Trace(id=f"t{i}", prompt_id=f"p{i}", raw="", model="m", suite="xstest", label="benign" if i % 2 else
                    "harmful", thinking="", answer="no") for i in range(6)]
    verdicts = [Verdict(trace_id=f"t{i}", segment="answer", judge="refusal", judge_version=str(1 + i // 3),
                        status="ok", refused=True) for i in range(6)]
    with JsonlWriter(root / "traces" / "m.jsonl") as w:
        w.write_batch(traces)
    with JsonlWriter(root / "verdicts.jsonl") as w:
        w.write_batch(verdicts)
    res = CliRunner().invoke(app, ["report", str(root)])
    assert res.exit_code == 0, res.output
    assert table(root, "paired").empty and list(table(root, "paired").columns)[:3] == ["model", "judge", "n"]
    r = table(root, "refusal")
    assert set(r["judge"]) == {"refusal@1", "refusal@2"}  # versions are not pooled
    assert r["n"].sum() == 6 and r["refused"].sum() == 6
    assert "has both its thinking and its answer judged by a harm judge, so no paired comparison" in (root / "report" / "report.md").read_text()
    assert "6 traces have no thinking text" in (root / "report" / "report.md").read_text()


def test_grade_and_kind_come_from_the_verdicts_when_stated(tmp_path):
    """verdict/2 records state grade and kind: they win over the judge-name inference kept for verdict/1."""
    root = make_run(tmp_path / "r")
    lines = []
    for i in range(20):
        for seg in ("thinking", "answer"):
            # A screening-grade judge with an ordinary name, and `offline` declared standard-grade.
            lines.append({"schema": "tracesafe.verdict/2", "trace_id": f"m1-h{i}", "segment": seg, "judge": "quick",
                          "judge_version": "1", "status": "ok", "unsafe": i % 3 == 0, "grade": "screening",
                          "kind": "harm"})
        lines.append({"schema": "tracesafe.verdict/2", "trace_id": f"m1-h{i}", "segment": "answer",
                      "judge": "declines", "judge_version": "1", "status": "ok", "refused": i % 2 == 0,
                      "grade": "standard", "kind": "refusal"})
    with open(root / "verdicts.jsonl", "ab") as f:
        f.write(b"".join(orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE) for r in lines))
    recs = [orjson.loads(ln) for ln in (root / "verdicts.jsonl").read_bytes().splitlines()]
    for r in recs:
        if r["judge"] == "offline":
            r["grade"] = "standard"
    (root / "verdicts.jsonl").write_bytes(b"".join(orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE) for r in recs))
    res = CliRunner().invoke(app, ["report", str(root), "--no-default-cards"])
    assert res.exit_code == 0, res.output
    s = table(root, "summary")
    grades = dict(zip(s["judge"], s["grade"]))
    assert grades == {"llama-guard": "standard", "offline": "standard", "quick": "screening", "rubric": "standard"}
    assert set(table(root, "refusal")["judge"]) == {"declines", "refusal"}
    report = (root / "report" / "report.md").read_text()
    assert "quick (screening-grade)" in report and "offline (screening-grade)" not in report


def test_report_says_what_its_rows_pool(run_a, tmp_path):
    """One model's traces from two settings (normal and zerothink: same prompts and sample indices, other ids), one
    judge's verdicts at two thresholds, Safe@K whose K leaves most prompts out: each pooled silently before."""
    import shutil

    root = shutil.copytree(run_a, tmp_path / "pooled", ignore=shutil.ignore_patterns("report"))
    tr = root / "traces" / "m1.jsonl"
    lines = tr.read_bytes().splitlines(keepends=True)
    again = [orjson.loads(x) for x in lines[:4]]
    for t in again:  # the same prompts and samples under other ids: another setting
        t["id"] += "-zerothink"
    tr.write_bytes(b"".join(lines) + b"".join(orjson.dumps(t) + b"\n" for t in again))
    extra = [orjson.dumps({**Verdict(trace_id="m1-h0-zerothink", segment="thinking", judge="offline",
                                     judge_version="1", status="ok", unsafe=True).to_dict(),
                           "judge_config": {"threshold": t}}) + b"\n" for t in (0.2,)]  # fmt: skip
    vf = root / "verdicts.jsonl"
    vf.write_bytes(vf.read_bytes().replace(b'"judge":"offline"', b'"judge":"offline","judge_config":{"threshold":0.5}')
                   + b"".join(extra))  # fmt: skip
    res = CliRunner().invoke(app, ["report", str(root)])
    assert res.exit_code == 0, res.output
    head = (root / "report" / "report.md").read_text().split("## ")[0]
    assert "**Settings pooled:** m1 has 8 traces sharing a prompt and sample index" in head
    assert "**Decision options pooled:** the verdict file holds verdicts of offline made with more than one threshold" in head
    # The third sample of p0 (offline, thinking) makes K = 3: the other prompts, with two, are left out.
    assert "**Safe@K on few prompts:** in 1 `at_k` row most prompts have fewer samples than K" in head
    assert "pooled" not in (run_a / "report" / "report.md").read_text().split("## ")[0]
