"""Runs end to end: the embedded demo, resume of a finished run, figures script, and the reproduction
scripts in --smoke mode on the tiny model (real generation, real judges, real report)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

REPO = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "tracesafe.cli"]


def tracesafe(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    r = subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=cwd)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def test_demo_writes_full_report_and_rerun_does_nothing(tmp_path):
    out = tmp_path / "demo"
    r = tracesafe("demo", "-o", str(out))
    assert "synthetic" in r.stdout
    html = out / "report" / "report.html"
    assert html.exists() and "SYNTHETIC" in html.read_text()
    for table in ("summary", "paired", "by_category", "at_k", "refusal", "agreement", "lengths", "onset"):
        assert (out / "report" / "tables" / f"{table}.csv").exists(), table
    verdicts = [orjson.loads(x) for x in (out / "verdicts.jsonl").read_bytes().splitlines()]
    assert {v["judge"] for v in verdicts} == {"offline", "refusal"}
    assert {v["segment"] for v in verdicts} == {"thinking", "answer"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["judges"].keys() == {"offline", "refusal"} and "sample_traces.jsonl" in manifest["inputs"]
    # The text of traces (real harmful text in the demo) never reaches the default output.
    texts = [t.get(k) or "" for t in map(orjson.loads, (out / "traces" / "sample_traces.jsonl").read_bytes().splitlines())
             for k in ("prompt", "thinking", "answer")]  # fmt: skip
    assert not [x for x in texts if x[:40] and x[:40] in r.stdout + r.stderr]
    # docs/runs.md quotes the demo's numbers (two of them had gone stale: a new user's probe).
    import re

    import pandas as pd

    said = re.search(r"thinking ([\d.]+)% / ([\d.]+)% /\s+([\d.]+)% vs answer ([\d.]+)% / ([\d.]+)% / ([\d.]+)% \(gpt-oss-like / "
                     r"qwq-like / r1-distill-like\); hidden risk on (\d+) / (\d+) / (\d+) traces", (REPO / "docs/runs.md").read_text())
    s = pd.read_csv(out / "report" / "tables" / "summary.csv").query("judge == 'offline'").groupby(["segment", "model"])[["unsafe", "n"]].sum()
    paired = pd.read_csv(out / "report" / "tables" / "paired.csv").query("judge == 'offline'").set_index("model")
    models = [f"synthetic/{m}-like" for m in ("gpt-oss", "qwq", "r1-distill")]
    got = [100 * s.loc[(seg, m), "unsafe"] / s.loc[(seg, m), "n"] for seg in ("thinking", "answer") for m in models]
    assert said and all(abs(float(x) - y) <= 0.05 + 1e-9 for x, y in zip(said.groups()[:6], got)), (said and said.groups(), got)
    assert list(said.groups()[6:]) == [str(paired.loc[m, "thinking_only"]) for m in models]
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    r2 = tracesafe("demo", "-o", str(out))
    assert "split sample_traces.jsonl: done" in r2.stderr and "judge: done" in r2.stderr and "report: done" in r2.stderr
    after = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.name != "manifest.json"}
    assert all(before[p] == t for p, t in after.items())


def test_changed_input_reruns_only_what_depends_on_it(tmp_path):
    traces = tmp_path / "t.jsonl"
    lines = (REPO / "traces/sample_traces.jsonl").read_bytes().splitlines()[:20]
    traces.write_bytes(b"\n".join(lines) + b"\n")
    cfg = tmp_path / "c.toml"
    cfg.write_text('[run]\nname="x"\ntraces=["t.jsonl"]\n[judge]\njudges=["refusal"]\n')
    run_dir = tmp_path / "run"
    tracesafe("run", str(cfg), "-o", str(run_dir))
    n1 = len((run_dir / "verdicts.jsonl").read_bytes().splitlines())
    traces.write_bytes(b"\n".join((REPO / "traces/sample_traces.jsonl").read_bytes().splitlines()[:30]) + b"\n")
    r = tracesafe("run", str(cfg), "-o", str(run_dir))
    assert "split t.jsonl: done" not in r.stderr and "judge: done" not in r.stderr
    assert len((run_dir / "verdicts.jsonl").read_bytes().splitlines()) > n1


def test_make_figures_script(tmp_path):
    env = {**os.environ, "TRACESAFE": str(Path(sys.executable).parent / "tracesafe")}
    r = subprocess.run(["bash", "scripts/make_figures.sh", str(tmp_path / "figs")], cwd=REPO, capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    pngs = sorted(p.name for p in (tmp_path / "figs").glob("*.png"))
    assert "hidden_risk.png" in pngs and "rates_by_model.png" in pngs
    assert pngs == sorted(p.name for p in (REPO / "figures").glob("*.png")), "figures/ is stale: run scripts/make_figures.sh"


SCRIPTS = {
    "reproduce_r1_hidden_risks.py": ["r1_hidden_risks"],
    "reproduce_sst.py": ["sst_plain", "sst_safety_prompt"],
    "reproduce_safechain_decoding.py": ["safechain_normal", "safechain_zerothink", "safechain_lessthink", "safechain_morethink"],
}


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_reproduction_scripts_smoke(script, tiny_r1, tmp_path):
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, f"scripts/{script}", "--smoke", "--tiny-model", str(tiny_r1.parent), "-o", str(out)],
                       capture_output=True, text=True, cwd=REPO, timeout=600)  # fmt: skip
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    for run in SCRIPTS[script]:
        verdicts = [orjson.loads(x) for x in (out / run / "verdicts.jsonl").read_bytes().splitlines()]
        assert {v["judge"] for v in verdicts} == {"offline", "refusal"}  # model judges -> offline in smoke runs
        traces = [orjson.loads(x) for f in (out / run / "traces").glob("*.jsonl") for x in f.read_bytes().splitlines()]
        assert traces and all(t["model"] == str(tiny_r1) for t in traces)
        assert (out / run / "report" / "tables" / "at_k.csv").exists()
    report = out / "compare" if len(SCRIPTS[script]) > 1 else out / SCRIPTS[script][0] / "report"
    assert (report / "report.html").exists()
    # The published cells beside ours: every cell of the script's published table, in the report too.
    from tracesafe.compare import COMPARISON_COLUMNS

    with open(out / "comparison.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and list(rows[0]) == COMPARISON_COLUMNS and {r["run"] for r in rows} == set(SCRIPTS[script])
    assert "Published numbers beside ours" in (report / "report.html").read_text()
    assert "UNVERIFIED: " in r.stdout
    if script == "reproduce_safechain_decoding.py":
        modes = {t["params"]["thinking_mode"] for run in SCRIPTS[script] for f in (out / run / "traces").glob("*.jsonl")
                 for t in map(orjson.loads, f.read_bytes().splitlines())}  # fmt: skip
        assert modes == {"normal", "zerothink", "lessthink", "morethink"}
    if script == "reproduce_sst.py":
        t = orjson.loads(next((out / "sst_safety_prompt" / "traces").glob("*.jsonl")).read_bytes().splitlines()[0])
        assert t["params"]["system_prompt"].startswith("Always assist with care")


def test_run_reasoning_format_splits_trace_inputs_and_a_change_resplits(tmp_path):
    (tmp_path / "t.jsonl").write_bytes(b"\n".join((REPO / "traces/sample_traces.jsonl").read_bytes().splitlines()[:5]) + b"\n")
    cfg = tmp_path / "c.toml"
    run_dir = tmp_path / "run"

    def run(fmt: str) -> tuple[subprocess.CompletedProcess, set[str]]:
        cfg.write_text(f'[run]\nname="x"\ntraces=["t.jsonl"]\nreasoning_format="{fmt}"\n[judge]\njudges=["refusal"]\n')
        r = tracesafe("run", str(cfg), "-o", str(run_dir))
        return r, {orjson.loads(line)["split_format"] for line in (run_dir / "traces/t.jsonl").read_bytes().splitlines()}

    assert run("deepseek_r1")[1] == {"deepseek_r1"}
    r, found = run("ernie45")
    assert found == {"ernie45"} and "split t.jsonl: done" not in r.stderr
    cfg.write_text('[run]\nname="x"\ntraces=["t.jsonl"]\nreasoning_format="nope"\n')
    r = subprocess.run([*CLI, "run", str(cfg), "-o", str(run_dir)], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 2 and f"{cfg}: run.reasoning_format: unknown reasoning format 'nope'" in r.stderr
