"""Hostile input: names that try to inject into report.md, CSV formulas, mathtext, colliding run file names, bad
record fields, directories and missing folders, optional packages that are not installed. Each ends in a correct
report or one clear line with exit status 2, never a traceback."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from html import unescape
from pathlib import Path

import orjson
import pandas as pd
import pytest
from markdown_it import MarkdownIt
from test_report import make_run
from typer.testing import CliRunner

from tracesafe.cli import app
from tracesafe.records import Trace, Verdict

REPO = Path(__file__).resolve().parent.parent
HOSTILE = ("=cmd|' /C calc'!A0 <script>alert(1)</script><img src=x onerror=alert(2)>\n# Injected heading\n"
           "[click](javascript:alert(3)) `tick` *em* _u_ ~~s~~ | & &amp; model$\\foo$x")
CATEGORY, HARM_AREA, JUDGE = "@SUM(1+1)", "+cmd", "-lg <b>x</b>"


def cli(*args: str):
    res = CliRunner().invoke(app, list(args))
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception  # never a traceback
    return res


def rewrite(path: Path, **renames) -> None:
    """Replace field values in every record of a JSONL file: renames = {field: {old: new}}."""
    recs = [orjson.loads(x) for x in path.read_bytes().splitlines()]
    for r in recs:
        for f, m in renames.items():
            if r.get(f) in m:
                r[f] = m[r[f]]
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in recs))


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory) -> Path:
    root = make_run(tmp_path_factory.mktemp("hostile") / "run")
    rewrite(root / "traces" / "m1.jsonl", model={"m1": HOSTILE}, category={"c": CATEGORY}, harm_area={"A": HARM_AREA})
    rewrite(root / "verdicts.jsonl", judge={"llama-guard": JUDGE})
    res = cli("report", str(root), "--title", "T <i>x</i>\n# H")
    assert res.exit_code == 0, res.output
    return root / "report"


def test_report_md_renders_hostile_names_as_text(hostile_report):
    md = (hostile_report / "report.md").read_text()
    # Rendered by a CommonMark renderer that passes raw HTML through (the worst case).
    html = MarkdownIt("commonmark").enable("table").render(md)
    assert "<script" not in html and "<img src=\"x\"" not in html and "<img src=x" not in html
    assert 'href="javascript' not in html and "<b>x</b>" not in html and "<i>x</i>" not in html
    assert re.findall(r"<h1>(.*?)</h1>", html) == ["T &lt;i&gt;x&lt;/i&gt; # H"]
    assert "Injected" not in "".join(re.findall(r"<h\d>.*?</h\d>", html))
    # The names are there, as text, in the tables and in the findings.
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 5
    assert "[click](javascript:alert(3)) `tick` *em* _u_ ~~s~~ | &amp; &amp;amp; model$\\foo$x" in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "<td>+cmd</td>" in html
    # No unescaped $ (GitHub renders $...$ as math) and no line of the name left to start a block.
    assert not re.search(r"(?<!\\)\$\\foo", md)
    assert not any(line.startswith("# Injected") for line in md.splitlines())


def test_report_html_escapes_hostile_names(hostile_report):
    html = (hostile_report / "report.html").read_text()
    assert "<script" not in html and "<img src=x" not in html and "<b>x</b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "model$\\foo$x" in html
    assert "<title>T &lt;i&gt;x&lt;/i&gt; # H</title>" in html


def test_csv_text_cells_cannot_be_formulas(hostile_report):
    risky = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
    n_text = 0
    for path in sorted((hostile_report / "tables").glob("*.csv")):
        with open(path, newline="", encoding="utf-8") as f:
            for row in list(csv.reader(f))[1:]:
                for cell in row:
                    if cell.startswith(risky):
                        float(cell)  # only a number may start with - or +
                    n_text += cell.startswith("'")
    assert n_text > 20
    s = pd.read_csv(hostile_report / "tables" / "summary.csv")
    assert set(s["model"]) == {"'" + HOSTILE} and set(s["judge"]) >= {"'" + JUDGE, "offline"}
    assert s["unsafe_rate"].dtype == float and s["n"].dtype.kind == "i"
    cat = pd.read_csv(hostile_report / "tables" / "by_category.csv")
    assert {"'" + CATEGORY, "safe_contexts"} <= set(cat["category"]) and "'" + HARM_AREA in set(cat["harm_area"])
    paired = pd.read_csv(hostile_report / "tables" / "paired.csv")
    assert (paired["diff_ci_low"] < 0).any()  # negative numbers stay numbers
    # Parquet keeps the names exactly.
    sp = pd.read_parquet(hostile_report / "tables" / "summary.parquet")
    assert set(sp["model"]) == {HOSTILE} and JUDGE in set(sp["judge"])


def test_compare_escapes_hostile_run_names(tmp_path):
    base, other = make_run(tmp_path / "a"), make_run(tmp_path / "b", model="m1-x", flip_thinking=(3,))
    (base / "manifest.json").write_bytes(orjson.dumps({"name": HOSTILE}))
    res = cli("compare", str(base), str(other), "-o", str(tmp_path / "cmp"))
    assert res.exit_code == 0, res.output
    md = (tmp_path / "cmp" / "report.md").read_text()
    html = MarkdownIt("commonmark").enable("table").render(md)
    assert "<script" not in html and 'src="x"' not in html and 'href="javascript' not in html
    heads = re.findall(r"<h(\d)>(.*?)</h\1>", html)  # the newline + "#" in the name opened no heading
    assert [lvl for lvl, _ in heads].count("1") == 1 and not any(text.startswith("Injected") for _, text in heads)
    for page in (html, (tmp_path / "cmp" / "report.html").read_text()):  # the name, as text, on one line
        (against,) = re.findall(r"<h2>Change against (.*?)</h2>", page)
        assert unescape(against) == " ".join(HOSTILE.split("\n"))
    runs = pd.read_csv(tmp_path / "cmp" / "tables" / "compare_diff.csv")["baseline_run"]
    assert set(runs) == {"'" + HOSTILE}


def test_dollar_in_a_name_is_plain_text_in_figures(tmp_path):
    root = make_run(tmp_path / "run", model="model$\\foo$x")
    res = cli("report", str(root))
    assert res.exit_code == 0, res.output
    svg = (root / "report" / "figures" / "rates_by_model.svg").read_text()
    assert "model$\\foo$x" in svg  # drawn as typed, not as mathtext
    assert len(list((root / "report" / "figures").glob("*.png"))) == 7


# ---------------------------------------------------------------- run: one file per input


def _sample(n: int, start: int = 0) -> bytes:
    return b"".join((REPO / "traces" / "sample_traces.jsonl").read_bytes().splitlines(keepends=True)[start:start + n])


def test_run_keeps_inputs_that_share_a_name(tmp_path):
    for folder, start, n in (("a", 0, 5), ("b", 5, 7)):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "traces.jsonl").write_bytes(_sample(n, start))
    cfg = tmp_path / "c.toml"
    cfg.write_text('[run]\nname="x"\ntraces=["a/traces.jsonl", "b/*.jsonl", "a/*.jsonl"]\n[judge]\njudges=["refusal"]\n')
    res = cli("run", str(cfg), "-o", str(tmp_path / "run"))
    assert res.exit_code == 0, res.output
    files = sorted((tmp_path / "run" / "traces").glob("*.jsonl"))
    assert len(files) == 2 and files[1].name == "traces.jsonl" and re.fullmatch(r"traces-[0-9a-f]{8}\.jsonl", files[0].name)
    assert [len(f.read_bytes().splitlines()) for f in files] == [7, 5]  # b/ is the second input
    ids = {orjson.loads(x)["trace_id"] for x in (tmp_path / "run" / "verdicts.jsonl").read_bytes().splitlines()}
    assert len(ids) == 12
    manifest = orjson.loads((tmp_path / "run" / "manifest.json").read_bytes())
    assert {Path(v["source"]).parent.name for v in manifest["inputs"].values()} == {"a", "b"}
    res = cli("run", str(cfg), "-o", str(tmp_path / "run"))  # a rerun finds both files again
    assert res.exit_code == 0 and res.output.count(": done") == 4, res.output


def test_unique_name():
    from tracesafe.runner import unique_name

    taken: set[str] = set()
    assert unique_name("m.jsonl", "model m", taken) == "m.jsonl"
    other = unique_name("M.jsonl", "/ext/M.jsonl", taken)  # case-insensitive file systems
    assert re.fullmatch(r"M-[0-9a-f]{8}\.jsonl", other)
    assert unique_name("M.jsonl", "/ext/M.jsonl", set()) == "M.jsonl"
    assert unique_name("M.jsonl", "/ext/M.jsonl", {"m.jsonl"}) == other  # the same name on a rerun


@pytest.mark.engine
def test_run_generated_model_and_input_of_the_same_name(tiny_r1, tmp_path):
    (tmp_path / "ext").mkdir()
    (tmp_path / "ext" / "m.jsonl").write_bytes(_sample(4))
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[run]\nname="x"\nsuites=["sst"]\nlimit=2\ntraces=["ext/m.jsonl"]\n'
                   f'[generate]\nbackend="hf"\nmax_tokens=8\n[[models]]\nname="m"\nmodel="{tiny_r1}"\n'
                   '[judge]\njudges=["refusal"]\n')
    res = cli("run", str(cfg), "-o", str(tmp_path / "run"))
    assert res.exit_code == 0, res.output
    gen = tmp_path / "run" / "traces" / "m.jsonl"
    assert {orjson.loads(x)["model"] for x in gen.read_bytes().splitlines()} == {str(tiny_r1)}
    (imported,) = [f for f in (tmp_path / "run" / "traces").glob("m-*.jsonl")]
    assert len(imported.read_bytes().splitlines()) == 4


# ---------------------------------------------------------------- bad records: FILE:LINE, exit 2, skip works

GOOD = {"schema": "tracesafe.trace/1", "id": "t", "prompt_id": "p", "raw": "<think>a</think>b", "model": "m",
        "prompt": "q", "sample": 0, "label": "harmful"}
BAD = {
    "reasoning": ({"reasoning": 5}, "field 'reasoning' must be a string or null, got integer"),
    "prompt_rendered": ({"prompt_rendered": ["<think>"]}, "field 'prompt_rendered' must be a string or null, got array"),
    "huge_sample": ({"sample": 2**63}, "field 'sample' is out of the 64-bit integer range"),
    "float_sample": ({"sample": 10**30}, "field 'sample' must be an integer, got number"),  # orjson reads 1e30
    "label": ({"label": "unsafe"}, "field 'label' must be one of 'harmful', 'benign', got 'unsafe'"),
}


def _traces(tmp_path: Path, bad: dict) -> Path:
    p = tmp_path / "t.jsonl"
    recs = [{**GOOD, "id": f"t{i}", "prompt_id": f"p{i}"} for i in range(3)]
    recs[1].update(bad)
    p.write_text("".join(json.dumps(r) + "\n" for r in recs))  # orjson writes no integer beyond 64 bits
    return p


def test_record_check_names_the_field():
    for fields, reason in BAD.values():
        with pytest.raises(ValueError, match=re.escape(reason)):
            Trace.check(orjson.loads(json.dumps({**GOOD, **fields})))
    Trace.check(GOOD)
    Trace.check({**GOOD, "synthetic": 0}, ("synthetic", "sample"))  # an extra field has no type to check
    with pytest.raises(ValueError, match=r"field 'n_tokens\.thinking' must be an integer or null, got string"):
        Trace.check({**GOOD, "n_tokens": {"thinking": "9"}})
    with pytest.raises(ValueError, match=r"field 'n_tokens\.<key>' is out of the 64-bit"):
        Trace.check({**GOOD, "n_tokens": {"a harmful sentence as a key": 2**64}})
    with pytest.raises(ValueError, match=r"field 'spans\[1\]\[2\]' must be a number, got string"):
        Verdict.check({"spans": [[0, 1, 0.5], [1, 2, "x"]]})
    with pytest.raises(ValueError, match="field 'unsafe' must be a boolean or null, got string"):
        Verdict.check({"unsafe": "false"})
    with pytest.raises(ValueError, match="field 'sample' must be an integer, got boolean"):
        Trace.check({**GOOD, "sample": True})
    with pytest.raises(ValueError, match="field 'split_status' must be one of 'complete', 'unterminated', 'no_thinking', got a longer"):
        Trace.check({**GOOD, "split_status": "a harmful sentence that must not be echoed back"})
    with pytest.raises(ValueError, match="field 'status' must be one of 'ok', 'error', got 'fine'"):
        Verdict.check({"status": "fine"})
    with pytest.raises(ValueError, match="expected a trace record"):
        Trace.from_dict({**GOOD, "schema": "tracesafe.verdict/1"})


@pytest.mark.parametrize("case", sorted(BAD))
@pytest.mark.parametrize("command", ["split", "judge", "reward", "report"])
def test_bad_trace_field_is_located_and_skippable(tmp_path, case, command):
    src = _traces(tmp_path, BAD[case][0])
    out = tmp_path / "out"
    if command == "report":
        v = tmp_path / "v.jsonl"
        v.write_bytes(b"".join(orjson.dumps({"trace_id": f"t{i}", "segment": "answer", "judge": "j", "judge_version": "1",
                                             "status": "ok", "unsafe": False}) + b"\n" for i in range(3)))
        args = ["report", "--traces", str(src), "--verdicts", str(v), "-o", str(out)]
    else:
        args = [command, str(src), "-o", str(out)] + (["-j", "refusal"] if command == "judge" else [])
    if command == "split" and case in ("huge_sample", "float_sample", "label"):
        res = cli(*args)  # a field split does not read passes through as bytes (the report splits these unsplit
        assert res.exit_code == 0, res.output  # traces itself, so it reads reasoning and prompt_rendered too)
        return
    res = cli(*args)
    assert res.exit_code == 2 and f"{src}:2: {BAD[case][1]}" in res.output, res.output
    assert len(res.output.strip().splitlines()) == 1
    res = cli(*args, "--on-bad-line", "skip")
    assert res.exit_code == 0, res.output
    assert f"skipped {src}:2: {BAD[case][1]}" in res.output or command == "split" and "skipped 1" in res.output
    assert res.output.count(f"skipped {src}:2") <= 1  # once, however many passes read the file


def test_directories_and_missing_folders_are_one_line(tmp_path):
    d = tmp_path / "dir"
    d.mkdir()
    for args in (["split", str(d), "-o", str(tmp_path / "o.jsonl")], ["judge", str(d), "-o", str(tmp_path / "v.jsonl")],
                 ["export", str(d), "-o", str(tmp_path / "e.parquet")], ["merge", str(d), "-o", str(tmp_path / "m.jsonl")],
                 ["reward", str(d), "-o", str(tmp_path / "r.jsonl")], ["run", str(d)],
                 ["judge-eval", "--judge", "refusal", "--gold", str(d)],
                 ["report", "--traces", str(d), "--verdicts", str(d), "-o", str(tmp_path / "rep")]):
        res = cli(*args)
        assert res.exit_code == 2 and res.output.startswith("error: ") and str(d) in res.output, (args, res.output)
        assert len(res.output.strip().splitlines()) == 1, res.output
    src = tmp_path / "t.jsonl"
    src.write_bytes(orjson.dumps(GOOD) + b"\n")
    # A missing output folder is made, as every command does.
    res = cli("split", str(src), "-o", str(tmp_path / "missing" / "o.jsonl"))
    assert res.exit_code == 0 and (tmp_path / "missing" / "o.jsonl").exists()


@pytest.mark.parametrize(("blocked", "args", "extra"), [
    ("httpx,openai", ["judge", "T", "-j", "rubric", "--judge-model", "gpt", "-O", "rubric.base_url=http://127.0.0.1:9/v1"], "models"),
    ("vllm", ["generate", "--model", "DIR", "--backend", "vllm", "--limit", "1"], "vllm"),
    ("transformers", ["generate", "--model", "DIR", "--backend", "hf", "--limit", "1"], "models"),
])
def test_missing_optional_package_names_the_pip_command(tmp_path, blocked, args, extra):
    src = tmp_path / "t.jsonl"
    src.write_bytes(orjson.dumps(GOOD) + b"\n")
    (tmp_path / "model").mkdir()
    args = [str(src) if a == "T" else str(tmp_path / "model") if a == "DIR" else a for a in args]
    # None in sys.modules makes `import NAME` fail exactly as when NAME is not installed.
    code = (f"import sys; sys.modules.update(dict.fromkeys({blocked.split(',')!r})); from tracesafe.cli import app; "
            f"app({args + ['-o', str(tmp_path / 'out.jsonl')]!r})")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "not installed: pip install 'tracesafe[" + extra + "]'" in r.stderr


# ---------------------------------------------------------------- one id, two traces; traces never split


def test_two_traces_under_one_id_are_an_error_not_a_duplicate(tmp_path):
    # Two models' outputs imported without a model name hash to the same trace ids: judging or merging them used
    # to keep the first model's and drop the other's without a word.
    ia, ib = tmp_path / "ia.jsonl", tmp_path / "ib.jsonl"
    for out, answer in ((ia, "Use a tension wrench."), (ib, "I can't help with that.")):
        src = tmp_path / f"src_{out.name}"
        src.write_text(json.dumps({"prompt": "How do I pick a lock?", "response": f"<think>x</think>{answer}"}) + "\n")
        res = cli("import", "jsonl", str(src), "-o", str(out))
        assert res.exit_code == 0 and f"{src}: 1 of 1 records name no model" in res.output, res.output
    assert orjson.loads(ia.read_bytes())["id"] == orjson.loads(ib.read_bytes())["id"]
    res = cli("judge", str(ia), str(ib), "-j", "refusal", "-o", str(tmp_path / "v.jsonl"))
    assert res.exit_code == 2 and f"{ib}:1: id '" in res.output and f"read at {ia}:1 with another text" in res.output
    assert len(res.output.strip().splitlines()) == 1
    res = cli("merge", str(ia), str(ib), "-o", str(tmp_path / "m.jsonl"))
    assert res.exit_code == 2 and f"{ib}:1: id" in res.output and "--model NAME" in res.output
    # The same file given twice is one set of traces (judged once, merged once); named models get their own ids.
    res = cli("judge", str(ia), str(ia), "-j", "refusal", "-o", str(tmp_path / "v2.jsonl"))
    assert res.exit_code == 0 and len((tmp_path / "v2.jsonl").read_bytes().splitlines()) == 2, res.output
    res = cli("import", "jsonl", str(tmp_path / "src_ib.jsonl"), "-o", str(ib), "--model", "B")
    assert res.exit_code == 0 and "name no model" not in res.output
    res = cli("judge", str(ia), str(ib), "-j", "refusal", "-o", str(tmp_path / "v3.jsonl"))
    assert res.exit_code == 0 and len((tmp_path / "v3.jsonl").read_bytes().splitlines()) == 4, res.output


def test_report_and_export_split_traces_that_were_never_split(tmp_path):
    # judge splits unsplit traces on the fly; the report and the export must read the same thinking and answer.
    src = tmp_path / "t.jsonl"
    recs = [{"id": f"t{i}", "prompt_id": f"p{i}", "model": "m", "prompt": "q", "label": "harmful",
             "raw": f"<think>{'let me think about it ' * (i + 1)}</think>The answer."} for i in range(3)]  # fmt: skip
    src.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in recs))
    v = tmp_path / "v.jsonl"
    assert cli("judge", str(src), "-j", "refusal", "-o", str(v)).exit_code == 0
    res = cli("report", str(src), str(v), "-o", str(tmp_path / "rep"))
    assert res.exit_code == 0 and f"{src}: 3 traces were never split" in res.output, res.output
    lengths = pd.read_csv(tmp_path / "rep" / "tables" / "lengths.csv")
    assert lengths["n_no_thinking"].tolist() == [0] and lengths["thinking_mean"].tolist() == [10.0]
    res = cli("export", str(src), str(v), "-o", str(tmp_path / "x.parquet"))
    assert res.exit_code == 0, res.output
    x = pd.read_parquet(tmp_path / "x.parquet")
    assert set(x["split_rule"]) == {"tag"} and set(x["split_status"]) == {"complete"}
    # A split file is read by the fast path, which must not let a value outside a field's set through.
    split = tmp_path / "s.jsonl"
    assert cli("split", str(src), "-o", str(split)).exit_code == 0
    rows = [orjson.loads(x) for x in split.read_bytes().splitlines()]
    rows[2]["label"] = "unsafe"
    split.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    res = cli("report", str(split), str(v), "-o", str(tmp_path / "rep3"))
    assert res.exit_code == 2 and f"{split}:3: field 'label' must be one of 'harmful', 'benign', got 'unsafe'" in res.output
    # A trace without prompt_id, which `judge` accepts, is a prompt of its own (said once), as `judge` and `export`
    # read it (it used to be refused here after `judge` had judged it: a new user's probe).
    recs[1].pop("prompt_id")
    src.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in recs))
    res = cli("report", str(src), str(v), "-o", str(tmp_path / "rep2"))
    assert res.exit_code == 0 and "1 trace(s) have no prompt_id: each is counted as a prompt of its own" in res.output, res.output
    # A `synthetic` that is not a boolean is refused by both, at its line.
    recs[1]["synthetic"] = "yes"
    src.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in recs))
    for args in (("report", src, v, "-o", tmp_path / "rep2"), ("judge", src, "-j", "refusal", "-o", tmp_path / "v2.jsonl")):
        res = cli(*map(str, args))
        assert res.exit_code == 2 and f"{src}:2: field 'synthetic' must be true, false or null, got a string" in res.output, res.output


def test_a_reader_that_stops_early_is_no_error():
    """`tracesafe judges list | head -1`: the pipe closes before the command writes; it once printed
    "error: [Errno 32] Broken pipe" and exited 1. Now it stops quietly with 141, as a command killed by SIGPIPE."""
    proc = subprocess.Popen([sys.executable, "-m", "tracesafe.cli", "judges", "list"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # before the command has imported anything: its first write meets a closed pipe
    err = proc.stderr.read().decode()
    assert proc.wait(60) == 141 and err == "", err


def test_only_a_closed_stdout_is_quiet(monkeypatch):
    """A broken pipe elsewhere (a dead worker, a socket) stays an error: the quiet exit needs stdout's reader gone."""
    import io
    import os

    from tracesafe.cli._app import _stdout_closed

    r, w = os.pipe()
    try:
        monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(io.FileIO(w, "w", closefd=False)))
        assert not _stdout_closed()  # a reader is there
        os.close(r)
        r = None
        assert _stdout_closed()
    finally:
        for fd in (r, w):
            if fd is not None:
                os.close(fd)


@pytest.mark.parametrize("fmt, name, lines, message", [
    ("lm-eval", "samples_t_2025-01-01T00-00-00.000000.jsonl", ['{"doc_id": [1], "doc": {}, "resps": [["x"]]}'],
     "needs a number or string 'doc_id'"),
    ("lm-eval", "samples_t_2025-01-01T00-00-00.000000.jsonl", ['{"doc_id": 1, "doc": {}, "resps": [["x"]], "metrics": 5}'],
     "'metrics' is not a list of metric names: 5"),
    ("garak", "g.report.jsonl", ['{"entry_type": "attempt", "status": 1, "prompt": "How to bake bread?", "outputs": ["Bake."]}'],
     "attempt has no 'uuid'"),
    ("csv", "c.csv", ["prompt,response", "A,x", "B,y,extra"], "3 fields, the header has 2"),
    ("jsonl", "r.jsonl", ['{"prompt": "How?", "response": 5}'], "response field 'response' is an integer, expected a string"),
    ("jsonl", "ids.jsonl", ['{"qid": "1", "prompt": "How do I bake bread?", "response": "Bake."}',
                            '{"qid": "1", "prompt": "How do I slice bread?", "response": "Slice."}'],
     "prompt id '1' was given to another prompt at"),
])  # fmt: skip
def test_malformed_importer_records_are_file_line_and_skippable(tmp_path, fmt, name, lines, message):
    """A new user's probe: each of these was a traceback (lm-eval), a silent merge of two attempts (garak) or of two
    prompts under one id, an unskippable row (CSV) or a message naming the record's field, not the user's."""
    src, out = tmp_path / name, tmp_path / "o.jsonl"
    src.write_text("\n".join(lines) + "\n")
    extra = ["--id-field", "qid"] if name == "ids.jsonl" else []
    res = cli("import", fmt, str(src), "-o", str(out), "--model", "m", *extra)
    assert res.exit_code == 2 and re.search(rf"{re.escape(str(src))}:\d+: .*{re.escape(message)}", res.output), res.output
    assert not out.exists()
    res = cli("import", fmt, str(src), "-o", str(out), "--model", "m", *extra, "--on-bad-line", "skip")
    assert res.exit_code == 0 and "skipped" in res.output and out.exists(), res.output


def test_promptfoo_odd_token_usage_and_vars_are_read_not_crashed_on(tmp_path):
    src = tmp_path / "pf.jsonl"
    src.write_text('{"provider": "p", "prompt": "How?", "response": {"output": "x", "tokenUsage": 5}}\n'
                   '{"provider": "p", "prompt": "Why?", "testCase": {"vars": ["a"]}, "response": {"output": "y"}}\n')
    res = cli("import", "promptfoo", str(src), "-o", str(tmp_path / "o.jsonl"))
    assert res.exit_code == 0 and [r["n_tokens"] for r in map(orjson.loads, (tmp_path / "o.jsonl").read_bytes().splitlines())] == [
        {"prompt": None, "completion": None}] * 2, res.output


def test_text_that_is_not_utf8_is_named_by_line(tmp_path):
    c, j = tmp_path / "c.csv", tmp_path / "j.jsonl"
    c.write_bytes(b"\xef\xbb\xbfprompt,response\r\nA,\"x\r\ny\"\r\nB,b\xffad\r\n")
    j.write_bytes(b'{"id": "a", "raw": "ok"}\n{"raw": "b\xffad"}\n')
    res = cli("import", "csv", str(c), "-o", str(tmp_path / "o.jsonl"), "--model", "m")
    assert res.exit_code == 2 and res.output.strip() == f"error: {c}:4: not UTF-8 text (byte 0xff at byte 4 of the line)"
    mac = tmp_path / "mac.csv"  # Excel for Mac's "CSV (Macintosh)" ends lines with a lone CR
    mac.write_bytes(b"prompt,response\rA,x\rB,y\r")
    res = cli("import", "csv", str(mac), "-o", str(tmp_path / "m.jsonl"), "--model", "m")
    assert res.exit_code == 0 and "imported 2 traces" in res.output, res.output
    for args in (["split", str(j), "-o", str(tmp_path / "s.jsonl")], ["judge", str(j), "-o", str(tmp_path / "v.jsonl")]):
        res = cli(*args)
        assert res.exit_code == 2 and f"{j}:2: " in res.output and "not UTF-8 text (byte 0xff at byte 11 of the line)" in res.output


def test_split_names_a_pipe_and_where_it_cannot_write(tmp_path):
    src = tmp_path / "s.jsonl"
    src.write_text('{"raw": "<think>a</think>b"}\n')
    r = subprocess.run(f"{sys.executable} -m tracesafe.cli split <(cat {src}) -o {tmp_path / 'o.jsonl'}", shell=True,
                       executable="/bin/bash", capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 2 and "not a regular file (a pipe?)" in r.stderr and "Traceback" not in r.stderr, r.stderr
    res = cli("split", str(src), "-o", str(src / "o.jsonl"))
    assert res.exit_code == 2 and res.output.strip() == f"error: {src}: is a file, not a directory"


def test_judge_options_and_sizes_that_cannot_be_meant_are_one_line(tmp_path):
    """A new user's probe: a misspelt per-judge option was a traceback; `stage2=False` (capital F) left the second
    stage on, as any non-empty string is true; a batch size of 0, a threshold of 2 and a segment named `bogus` were
    taken."""
    t = tmp_path / "t.jsonl"
    t.write_text(json.dumps({"id": "a", "prompt_id": "p", "model": "m", "prompt": "How do I bake bread?",
                             "raw": "<think>Flour and water.</think>Bake it."}) + "\n")  # fmt: skip
    gold = tmp_path / "g.jsonl"
    gold.write_text('{"prompt": "p", "response": "Bake it.", "unsafe": false, "segment": "bogus"}\n')
    out = str(tmp_path / "v.jsonl")
    for args, message in ((["judge", str(t), "-o", out, "-O", "offline.thresh=1"], "-O offline.thresh: not an option of judge 'offline'"),
                          (["judge", str(t), "-o", out, "-O", "offline.stage2=maybe"], "-O offline.stage2=maybe: expected true or false"),
                          (["judge", str(t), "-o", out, "-O", "offline.threshold=abc"], "-O offline.threshold=abc: expected a number"),
                          (["judge", str(t), "-o", out, "-O", "offline.threshold=2"], "offline: threshold must be in [0, 1], not 2"),
                          (["judge", str(t), "-o", out, "--batch-size", "0"], "batch size must be >= 1, not 0"),
                          (["judge-eval", "--judge", "offline", "--gold", str(gold)], f"{gold}:1: segments must be among"),
                          (["judge-eval", "--judge", "offline", "--gold", "contrast", "--segment", "bogus"], "segments must be among")):  # fmt: skip
        res = cli(*args)
        assert res.exit_code == 2 and res.output.startswith(f"error: {message}"), (args, res.output)
    assert not Path(out).exists()
    res = cli("judge", str(t), "-o", out, "-j", "offline", "-O", "offline.stage2=False")
    assert res.exit_code == 0 and orjson.loads(Path(out).read_bytes().splitlines()[0])["judge_config"]["stage2"] is None


def test_report_and_export_refuse_verdicts_of_no_known_status_or_segment_or_version_and_same_length_edits(tmp_path):
    """A new user's probe: such verdicts counted nowhere (status 'weird'), made rows of their own (segment
    'thoughts') or passed without a version, exit 0; a trace edited without changing its lengths hid under its id."""
    t, v = tmp_path / "t.jsonl", tmp_path / "v.jsonl"
    rec = {"id": "a", "prompt_id": "p", "model": "m1", "prompt": "How do I bake bread?", "raw": "<think>Flour.</think>Bake."}
    t.write_text(json.dumps(rec) + "\n")
    ok = {"trace_id": "a", "segment": "answer", "judge": "rubric", "judge_version": "1", "status": "ok", "unsafe": False}
    for bad, reason in (({"status": "weird"}, "field 'status' must be one of 'ok', 'error', got 'weird'"),
                        ({"segment": "thoughts"}, "field 'segment' must be one of 'thinking', 'answer', 'full', got 'thoughts'"),
                        ({"judge_version": None}, "lacks judge_version (is this a verdict file?)")):  # fmt: skip
        v.write_text(json.dumps(ok) + "\n" + json.dumps({**ok, **bad}) + "\n")
        for args in (("report", t, v, "-o", tmp_path / "r"), ("export", t, v, "-o", tmp_path / "e.parquet")):
            res = cli(*map(str, args))
            assert res.exit_code == 2 and res.output.strip().endswith(f"error: {v}:2: {reason}"), (args, res.output)
    v.write_text(json.dumps(ok) + "\n")
    t.write_text(json.dumps(rec) + "\n" + json.dumps({**rec, "raw": "<think>Flour.</think>Burn."}) + "\n")
    res = cli("report", str(t), str(v), "-o", str(tmp_path / "r"))
    assert res.exit_code == 2 and f"error: {t}:2: id 'a' was read at {t}:1 with another text or model" in res.output, res.output


def test_report_names_the_line_of_invalid_utf8_in_a_field_it_tabulates(tmp_path):
    """A new user's probe: a byte 0xff in a trace's model (or a verdict's judge) passed pyarrow's JSON reader and
    crashed the report later with a traceback."""
    t, v = tmp_path / "t.jsonl", tmp_path / "v.jsonl"
    rec = {"id": "a", "prompt_id": "p", "model": "m1", "prompt": "How do I bake bread?", "raw": "<think>Flour.</think>Bake.",
           "thinking": "Flour.", "answer": "Bake.", "split_status": "complete"}  # split: the fast reader's input
    ok = {"trace_id": "a", "segment": "answer", "judge": "rubric", "judge_version": "1", "status": "ok", "unsafe": False}
    t.write_bytes(orjson.dumps(rec) + b"\n" + orjson.dumps({**rec, "id": "b"}).replace(b'"m1"', b'"m\xff1"') + b"\n")
    v.write_bytes(orjson.dumps(ok) + b"\n")
    res = cli("report", str(t), str(v), "-o", str(tmp_path / "r"))
    assert res.exit_code == 2 and res.output.strip().endswith(f"error: {t}:2: invalid JSON: not UTF-8 text (byte 0xff at byte 37 of the line)"), res.output
    t.write_bytes(orjson.dumps(rec) + b"\n")
    v.write_bytes(orjson.dumps(ok) + b"\n" + orjson.dumps(ok).replace(b'"rubric"', b'"rub\xffric"') + b"\n")
    for args in (("report", t, v, "-o", tmp_path / "r"), ("export", t, v, "-o", tmp_path / "e.parquet")):
        res = cli(*map(str, args))
        assert res.exit_code == 2 and f"error: {v}:2: invalid JSON: not UTF-8 text" in res.output, (args, res.output)


def test_report_refuses_two_traces_under_one_id_and_a_harmfulness_off_the_scale(tmp_path):
    t, v = tmp_path / "t.jsonl", tmp_path / "v.jsonl"
    rec = {"id": "a", "prompt_id": "p", "model": "m1", "prompt": "How do I bake bread?", "raw": "<think>Flour.</think>Bake."}
    t.write_text(json.dumps(rec) + "\n" + json.dumps({**rec, "model": "m2"}) + "\n")
    v.write_text(json.dumps({"trace_id": "a", "segment": "answer", "judge": "rubric", "judge_version": "1", "status": "ok",
                             "unsafe": True, "harmfulness": 9}) + "\n")  # fmt: skip
    res = cli("report", str(t), str(v), "-o", str(tmp_path / "r"))
    assert res.exit_code == 2 and f"error: {t}:2: id 'a' was read at {t}:1 with another text or model" in res.output, res.output
    t.write_text(json.dumps(rec) + "\n" + json.dumps(rec) + "\n")  # the same trace twice is one trace
    res = cli("report", str(t), str(v), "-o", str(tmp_path / "r"))
    assert res.exit_code == 2 and res.output.strip().endswith(f"error: {v}:1: field 'harmfulness' must be from 1 to 5 or null, got 9")


def test_every_reader_words_a_torn_last_line_alike(tmp_path):
    """split said only "unexpected end of data" where judge, merge and export say it is a torn last line."""
    t = tmp_path / "t.jsonl"
    line = orjson.dumps({"id": "a", "prompt_id": "p", "model": "m", "prompt": "q", "raw": "<think>x</think>y"})
    t.write_bytes(line + b"\n" + line[:30])
    for args in (["split", str(t), "-o", str(tmp_path / "s.jsonl")], ["judge", str(t), "-j", "refusal", "-o", str(tmp_path / "v.jsonl")]):
        res = cli(*args)
        assert res.exit_code == 2 and f"error: {t}:2: torn last line (interrupted write?): unexpected end of data" in res.output, (args, res.output)


def test_a_byte_order_mark_is_worded_alike_by_every_reader(tmp_path):
    """report and export said "not a JSON record", promptfoo's importer "expected a JSON object with 'results'"."""
    t, v = tmp_path / "t.jsonl", tmp_path / "v.jsonl"
    t.write_bytes(b"\xef\xbb\xbf" + orjson.dumps({"id": "a", "prompt_id": "p", "model": "m", "raw": "<think>x</think>y"}) + b"\n")
    v.write_bytes(orjson.dumps({"trace_id": "a", "segment": "answer", "judge": "j", "judge_version": "1", "status": "ok"}) + b"\n")
    bom = "UTF-8 byte order mark (BOM) is not supported"
    for args in (("report", t, v, "-o", tmp_path / "r"), ("export", t, v, "-o", tmp_path / "e.parquet"), ("split", t, "-o", tmp_path / "s.jsonl")):
        res = cli(*map(str, args))
        assert res.exit_code == 2 and f"error: {t}:1: invalid JSON: {bom}" in res.output, (args, res.output)
    pf = tmp_path / "pf.json"
    pf.write_bytes(b'\xef\xbb\xbf{"results": {"results": []}}')
    res = cli("import", "promptfoo", str(pf), "-o", str(tmp_path / "o.jsonl"))
    assert res.exit_code == 2 and res.output.strip() == f"error: {pf}:1: {bom}", res.output
    t.write_bytes(b"\n\n{bad\n")  # the first record's own line
    res = cli("report", str(t), str(v), "-o", str(tmp_path / "r"))
    assert res.exit_code == 2 and f"error: {t}:3: invalid JSON: " in res.output, res.output


def test_a_report_with_no_verdict_of_its_traces_says_so(tmp_path):
    """A wrong pair of files gave an empty report, exit 0, with nothing on stderr (a new user's probe)."""
    t, v = tmp_path / "t.jsonl", tmp_path / "v.jsonl"
    t.write_bytes(orjson.dumps({"id": "a", "prompt_id": "p", "model": "m", "raw": "<think>x</think>y"}) + b"\n")
    v.write_bytes(orjson.dumps({"trace_id": "zz", "segment": "answer", "judge": "j", "judge_version": "1", "status": "ok"}) + b"\n")
    res = cli("report", str(t), str(v), "-o", str(tmp_path / "r"))
    assert res.exit_code == 0 and (f"warning: {v}: none of its 1 verdicts is of a trace in the trace files (another run's "
                                   "verdicts?); the report's tables are empty") in res.output, res.output
    v.write_bytes(b"")
    res = cli("report", str(t), str(v), "-o", str(tmp_path / "r"))
    assert res.exit_code == 0 and f"warning: {v}: no verdicts; the report's tables are empty" in res.output, res.output
