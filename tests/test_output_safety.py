"""Outputs never destroy inputs or each other: output = input is refused, temp names cannot collide, a second
writer fails at once, verdict fields are typed, compaction keeps lines it cannot read. Through the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
from typer.testing import CliRunner

from tracesafe.cli import app
from tracesafe.store import read_jsonl

HOLD = """
import sys
from tracesafe.store import JsonlWriter
w = JsonlWriter(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()
"""


def cli(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def write(path: Path, records: list[dict]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return path


def traces(path: Path, n: int = 4) -> Path:
    return write(path, [{"id": f"t{i}", "prompt_id": f"p{i}", "model": "m", "prompt": "q",
                         "raw": f"<think>thought {i}</think>I can't help with that.", "thinking": f"thought {i}",
                         "answer": "I can't help with that.", "split_status": "complete"} for i in range(n)])  # fmt: skip


def one_error_line(res) -> str:
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in res.output, res.output
    return lines[0]


def test_output_that_is_an_input_is_refused_by_every_command(tmp_path):
    t = traces(tmp_path / "t.jsonl")
    before = t.read_bytes()
    for args in (["judge", t, "-j", "refusal", "-o", t], ["export", t, "-o", t], ["split", t, "-o", t],
                 ["import", "jsonl", t, "-o", t], ["merge", t, "-o", t], ["reward", t, "-o", t],
                 ["generate", "--model", "m", "--backend", "openai", "--api-base", "http://127.0.0.1:9/v1",
                  "--suite", t, "-o", t],
                 ["judge", t, "-j", "refusal", "-o", tmp_path / "." / "t.jsonl"]):  # fmt: skip
        line = one_error_line(cli(*args))
        assert "the output is the input" in line, (args, line)
        assert t.read_bytes() == before, args


def test_inputs_named_like_a_temp_file_survive(tmp_path):
    src = traces(tmp_path / "x.jsonl.tmp")
    before = src.read_bytes()
    for args in (["split", src, "-o", tmp_path / "x.jsonl"], ["import", "jsonl", src, "-o", tmp_path / "x.jsonl"],
                 ["merge", src, traces(tmp_path / "y.jsonl", 6), "-o", tmp_path / "x.jsonl"]):  # fmt: skip
        res = cli(*args)
        assert res.exit_code == 0, res.output
        assert src.read_bytes() == before, args
        assert len(list(read_jsonl(tmp_path / "x.jsonl"))) in (4, 6), args
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file left behind


def test_a_second_writer_fails_at_once_naming_the_file(tmp_path):
    t = traces(tmp_path / "t.jsonl")
    out = tmp_path / "v.jsonl"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        for args in (["judge", t, "-j", "refusal", "-o", out], ["split", t, "-o", out], ["merge", t, "-o", out],
                     ["import", "jsonl", t, "-o", out],
                     # nothing listens on port 9: a request would fail, but none is sent
                     ["generate", "--model", "m", "--backend", "openai", "--api-base", "http://127.0.0.1:9/v1",
                      "--suite", "xstest", "-o", out]):  # fmt: skip
            line = one_error_line(cli(*args))
            assert f"{out}: another process is writing it" in line, (args, line)
        assert out.read_bytes() == b""
    finally:
        proc.communicate("\n", timeout=30)
    res = cli("judge", t, "-j", "refusal", "-o", out)
    assert res.exit_code == 0, res.output
    assert len(list(read_jsonl(out))) == 8


def test_a_symlink_to_an_output_shares_its_lock_and_is_written_through(tmp_path):
    """A new user's probe: a second judge writing through a symlink got in beside the first (each name had its own
    lock file: 21,000 duplicate verdicts), and split replaced the link by a file, leaving its target as it was."""
    t = traces(tmp_path / "t.jsonl")
    real, link = tmp_path / "real" / "v.jsonl", tmp_path / "link.jsonl"
    real.parent.mkdir()
    real.write_bytes(b"")
    link.symlink_to(real)
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(real)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        for args in (["judge", t, "-j", "refusal", "-o", link], ["split", t, "-o", link]):
            line = one_error_line(cli(*args))
            assert f"{link}: another process is writing it (it holds {real}.lock)" in line, (args, line)
    finally:
        proc.communicate("\n", timeout=30)
    res = cli("split", t, "-o", link)
    assert res.exit_code == 0 and link.is_symlink() and len(list(read_jsonl(real))) == 4, res.output


def test_a_report_folder_is_written_whole_under_its_lock_and_replaces_only_an_earlier_report(tmp_path):
    """A new user's probe: a report killed (or out of disk) mid-way left new tables beside an old report.html, and
    two reports into one folder both ran; the folder is now built aside and takes its name at the end."""
    t, v = traces(tmp_path / "t.jsonl"), _verdicts(tmp_path / "v.jsonl", 4)
    rep = tmp_path / "rep"
    assert cli("report", t, v, "-o", rep).exit_code == 0
    (rep / "tables" / "stale.csv").write_text("from another version")
    res = cli("report", t, v, "-o", rep)  # an earlier report (it holds report.md): replaced as a whole
    assert res.exit_code == 0 and not (rep / "tables" / "stale.csv").exists() and (rep / "report.html").exists(), res.output
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("precious")
    line = one_error_line(cli("report", t, v, "-o", mine))
    assert line == (f"error: {mine}: a folder with other files in it (no report.md of an earlier output); it would be "
                    "replaced, so give a new or empty folder") and [p.name for p in mine.iterdir()] == ["notes.txt"]
    (tmp_path / "f.txt").write_text("x")
    assert one_error_line(cli("report", t, v, "-o", tmp_path / "f.txt")) == f"error: {tmp_path / 'f.txt'}: is a file; this output is a folder"
    hold = "import sys\nfrom tracesafe.store import output_lock\nwith output_lock(sys.argv[1]):\n    print('ready', flush=True)\n    sys.stdin.readline()"
    proc = subprocess.Popen([sys.executable, "-c", hold, str(rep)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        assert f"{rep}: another process is writing it" in one_error_line(cli("report", t, v, "-o", rep))
    finally:
        proc.communicate("\n", timeout=30)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary folder left
    # "link/../out" is where the link leads, for the checks as for the write (a review: the write went to ./out,
    # the checks looked at the other place, and a folder of the user's files there was replaced).
    (tmp_path / "elsewhere" / "sub").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere" / "sub")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "precious.txt").write_text("mine")
    r = subprocess.run([sys.executable, "-m", "tracesafe.cli", "report", str(t), str(v), "-o", "link/../out"], cwd=tmp_path,
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0 and (tmp_path / "elsewhere" / "out" / "report.md").exists(), r.stderr
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["precious.txt"]
    # "." as the output (its temporary folder used to be made inside it, and the old report deleted with it).
    r = subprocess.run([sys.executable, "-m", "tracesafe.cli", "report", str(t), str(v), "-o", "."], cwd=rep,
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0 and sorted(p.name for p in rep.iterdir()) == ["figures", "report.html", "report.md", "tables"], r.stderr


def test_an_output_that_runs_out_of_room_is_named_and_the_old_one_kept(tmp_path):
    """A new user's probe: a full disk printed `error: [Errno 28] No space left on device` (split, report, export) or
    named the temporary file (import). A file size limit (RLIMIT_FSIZE) fails writes the same way, unprivileged."""
    import resource
    import signal

    src = traces(tmp_path / "t.jsonl", 400)
    out = tmp_path / "o.jsonl"
    out.write_text("old\n")

    def limit():  # in the child: writes past 64 KiB fail with EFBIG instead of killing it with SIGXFSZ
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 10, 64 << 10))

    for args in (["split", src, "-o", out], ["import", "jsonl", src, "-o", out]):
        r = subprocess.run([sys.executable, "-m", "tracesafe.cli", *map(str, args)], capture_output=True, text=True,
                           preexec_fn=limit)  # fmt: skip
        assert (r.returncode, r.stderr.strip()) == (2, f"error: {out}: File too large"), (args, r.stderr)
        assert out.read_text() == "old\n" and not [p for p in tmp_path.iterdir() if p.name.startswith(".")], args
    # A report folder: the file that failed is named inside the output folder, not inside its temporary one.
    rep = tmp_path / "rep"
    assert cli("report", src, _verdicts(tmp_path / "v.jsonl", 400), "-o", rep).exit_code == 0
    before = (rep / "report.md").read_text()
    big = traces(tmp_path / "big.jsonl", 4000)
    r = subprocess.run([sys.executable, "-m", "tracesafe.cli", "report", str(big), str(tmp_path / "v.jsonl"), "-o", str(rep)],
                       capture_output=True, text=True, preexec_fn=limit)  # fmt: skip
    # (the file inside it, or the folder where the failed write named no file)
    assert r.returncode == 2 and r.stderr.startswith(f"error: {rep}") and r.stderr.strip().endswith(": File too large"), r.stderr
    assert ".tmp" not in r.stderr
    assert (rep / "report.md").read_text() == before and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_temporary_files_of_killed_writers_are_removed_by_the_next_writer_of_that_output(tmp_path):
    """kill -9 leaves a writer's temporary file (no handler runs); repeated kills on large inputs piled them up."""
    src, out = traces(tmp_path / "t.jsonl"), tmp_path / "o.jsonl"
    (tmp_path / ".o.jsonl.abcd_123.tmp").write_text("half a split")  # tempfile's names: 8 characters of [a-z0-9_]
    (tmp_path / ".o.jsonl.zzzz9999.tmp").mkdir()  # export's work folder, or a folder output's old one moved aside
    (tmp_path / ".o.jsonl.zzzz9999.tmp" / "rows.parquet").write_text("x")
    keep = [tmp_path / ".o.jsonl.notes", tmp_path / ".p.jsonl.abcd_123.tmp", tmp_path / ".o.jsonl.abcd_1234.tmp",
            tmp_path / ".o.jsonl.original", tmp_path / ".o.jsonl.previous"]  # no .tmp: a user's own (8 characters)
    for k in keep:
        k.write_text("not a temporary file of o.jsonl")
    assert cli("split", src, "-o", out).exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == sorted(k.name for k in keep)


def _verdicts(path: Path, n: int, **fields) -> Path:
    rows = []
    for i in range(n):
        for seg in ("thinking", "answer"):
            rows.append({"schema": "tracesafe.verdict/1", "trace_id": f"t{i}", "segment": seg, "judge": "j",
                         "judge_version": "1", "status": "ok", "unsafe": False, "score": 0.1, "refused": False})  # fmt: skip
    rows[3].update(fields)
    return write(path, rows)


def test_verdict_fields_are_typed(tmp_path):
    t = traces(tmp_path / "t.jsonl", 5)
    for fields in ({"unsafe": "false"}, {"refused": "false"}, {"unsafe": 1}, {"score": "0.9"}):
        v = _verdicts(tmp_path / "v.jsonl", 5, **fields)
        res = cli("report", "--traces", t, "--verdicts", v, "-o", tmp_path / "rep")
        field = next(iter(fields))
        assert f"{v}:4: field '{field}' must be" in one_error_line(res), fields
        res = cli("report", "--traces", t, "--verdicts", v, "-o", tmp_path / "rep", "--on-bad-line", "skip")
        assert res.exit_code == 0, res.output
        assert f"skipped {v}:4" in res.output
    v = _verdicts(tmp_path / "v.jsonl", 5, unsafe="false")
    line = one_error_line(cli("report", "--traces", t, "--verdicts", v, "-o", tmp_path / "rep"))
    assert line.endswith("field 'unsafe' must be true, false or null, got a string")


def test_synthetic_flag_is_typed(tmp_path):
    t = traces(tmp_path / "t.jsonl", 3)
    rows = list(read_jsonl(t))
    rows[1]["synthetic"] = "false"
    write(t, rows)
    v = _verdicts(tmp_path / "v.jsonl", 3)
    line = one_error_line(cli("report", "--traces", t, "--verdicts", v, "-o", tmp_path / "rep"))
    assert line.endswith(f"{t}:2: field 'synthetic' must be true, false or null, got a string")


def test_compaction_keeps_lines_it_cannot_read(tmp_path, caplog):
    t = traces(tmp_path / "t.jsonl", 3)
    out = tmp_path / "v.jsonl"
    assert cli("judge", t, "-j", "refusal", "-o", out).exit_code == 0
    lines = out.read_bytes().splitlines(keepends=True)
    lines.insert(2, b'{"trace_id": "t9", "segm\n')  # a damaged line in the middle
    out.write_bytes(b"".join(lines))
    rows = list(read_jsonl(t))
    rows[0].update(raw="<think>changed</think>Sure, here it is.", thinking="changed", answer="Sure, here it is.")  # new text: its verdicts are superseded
    write(t, rows)
    with caplog.at_level("WARNING"):
        res = cli("judge", t, "-j", "refusal", "-o", out)
    assert res.exit_code == 0, res.output
    after = out.read_bytes().splitlines(keepends=True)
    assert after.count(b'{"trace_id": "t9", "segm\n') == 1 and len(after) == 7  # 6 verdicts (one per id) + that line
    assert any(f"kept 1 line(s) that do not parse while compacting ({out}:3)" in r.getMessage() for r in caplog.records)
    good = list(read_jsonl(out, on_bad_line="skip", warn=False))
    assert len({v["id"] for v in good}) == len(good) == 6
