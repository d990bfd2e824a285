"""Published numbers beside ours: comparison.csv from a real run's report tables, the published-table checks,
and the report section (added once, even when the comparison is rerun)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tracesafe.analysis import wilson_ci
from tracesafe.compare import (
    COMPARISON_COLUMNS,
    PUBLISHED_COLUMNS,
    append_to_report,
    compare,
    load_published,
    section,
    write_comparison,
)

REPO = Path(__file__).resolve().parent.parent
HEADER = ",".join(PUBLISHED_COLUMNS)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cmp") / "demo"
    r = subprocess.run([sys.executable, "-m", "tracesafe.cli", "demo", "-o", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return out


def _published(tmp_path: Path, rows: list[str]) -> Path:
    f = tmp_path / "pub.csv"
    f.write_text(HEADER + "\n" + "\n".join(rows) + "\n")
    return f


M = "synthetic/gpt-oss-like"


def test_comparison_cells(demo_run, tmp_path):
    summary = pd.read_csv(demo_run / "report" / "tables" / "summary.csv")
    row = summary[(summary["model"] == M) & (summary["suite"] == "sst") & (summary["segment"] == "answer")].iloc[0]
    k, n = int(row["unsafe"]), int(row["n"])
    lo, hi = wilson_ci(k, n)
    pub = _published(tmp_path, [
        f"P,1,v1,Table 1,a,demo,{M},sst,answer,unsafe_rate,{(lo + hi) / 2:.4f},read,",
        f"P,1,v1,Table 1,b,demo,{M},sst,answer,unsafe_rate,{min(hi + 0.1, 1):.4f},read,",
        f"P,1,v1,Table 1,c,demo,{M},sst,answer,safe_rate,{1 - k / n:.4f},read,",
        f"P,1,v1,Table 2,d,demo,{M},sst,answer,unsafe_rate,,unread,could not be read",
        "P,1,v1,Table 2,e,demo,other-model,sst,answer,unsafe_rate,0.1,read,",
        f"P,1,v1,Table 3,f,elsewhere,{M},sst,answer,unsafe_rate,0.1,read,",
    ])
    df = compare(load_published(pub), {"demo": demo_run})
    assert list(df.columns) == COMPARISON_COLUMNS
    assert list(df["status"]) == ["compared", "compared", "compared", "published value unread", "not in our run", "not in our run"]
    assert list(df["inside_ci"]) == ["yes", "no", "yes", "", "", ""]
    assert df.loc[0, "ci_low"] == pytest.approx(lo) and df.loc[0, "ci_high"] == pytest.approx(hi)
    assert (df.loc[0, "k"], df.loc[0, "n"]) == (k, n) and df.loc[2, "k"] == n - k  # safe = decided - unsafe
    assert df.loc[2, "ci_low"] == pytest.approx(1 - hi) and df.loc[0, "judge"] == "offline"
    assert pd.isna(df.loc[3, "published"]) and df.loc[3, "ours"] == pytest.approx(k / n)

    csv_path = write_comparison(df, tmp_path / "out", "Published beside ours", ["one thing unverified"])
    assert list(pd.read_csv(csv_path).columns) == COMPARISON_COLUMNS
    report = demo_run / "report"
    for _ in range(2):  # a rerun replaces the section instead of adding a second one
        append_to_report(report, section(df, "Published beside ours", ["one thing unverified"]))
    md, html = (report / "report.md").read_text(), (report / "report.html").read_text()
    assert md.count("## Published beside ours") == 1 and html.count("<h2>Published beside ours</h2>") == 1
    assert "one thing unverified" in md and html.rstrip().endswith("</body></html>")
    assert "Table 2, d" in md and "published value unread" in html


@pytest.mark.parametrize("row, reason", [
    ("P,1,v1,T,c,r,m,s,answer,unsafe_rate,,read,", r"pub\.csv:2: status read needs a number in value"),
    ("P,1,v1,T,c,r,m,s,answer,unsafe_rate,0.4,unread,", r"pub\.csv:2: a value with status 'unread'"),
    ("P,1,v1,T,c,r,m,s,answer,unsafe_rate,42,read,", r"pub\.csv:2: value 42\.0 is not a proportion"),
    ("P,1,v1,T,c,r,m,s,answer,harm_score,0.4,read,", r"pub\.csv:2: metric 'harm_score' is not one of"),
    ("P,1,v1,T,c,r,m,s,answer,unsafe_rate,0.4,guessed,", r"pub\.csv:2: status 'guessed' is not one of"),
])  # fmt: skip
def test_published_table_errors_are_located(tmp_path, row, reason):
    with pytest.raises(ValueError, match=reason):
        load_published(_published(tmp_path, [row]))


@pytest.mark.parametrize("name", ["r1_hidden_risks.csv", "safechain_decoding.csv", "sst.csv"])
def test_shipped_published_tables_load_and_guess_nothing(name):
    pub = load_published(REPO / "scripts" / "data" / "published" / name)
    assert len(pub) and set(pub["status"]) <= {"read", "unread", "not_published"}
    assert all(v == "" for v in pub.loc[pub["status"] != "read", "value"])
