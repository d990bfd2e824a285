"""Record files: torn-line repair, located errors, resume ids, merge, Parquet export, record round-trips."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson
import pyarrow.parquet as pq
import pytest

from tracesafe.records import Prompt, Trace, Verdict, trace_id
from tracesafe.export import export_parquet
from tracesafe.store import (
    BadLineError,
    JsonlWriter,
    OutputError,
    atomic_output,
    merge,
    read_ids,
    read_jsonl,
    repair_torn_tail,
    write_jsonl,
)


def test_records_round_trip_and_keep_unknown_fields():
    t = Trace(id="t1", prompt_id="p1", raw="<think>x</think>y", model="m", params={"temperature": 0.6})
    d = t.to_dict()
    assert d["schema"] == "tracesafe.trace/1"
    d["from_elsewhere"] = {"a": 1}
    back = Trace.from_dict(d)
    assert back.extra == {"from_elsewhere": {"a": 1}} and back.to_dict() == d
    with pytest.raises(ValueError, match="expected a trace record"):
        Trace.from_dict({**d, "schema": "tracesafe.verdict/1"})
    with pytest.raises(ValueError, match="lacks required field.*raw"):
        Trace.from_dict({"id": "x", "prompt_id": "p"})
    v = Verdict(trace_id="t1", segment="thinking", judge="j", judge_version="1", status="error", error="unparseable")
    assert Verdict.from_dict(v.to_dict()) == v and v.to_dict()["schema"] == "tracesafe.verdict/2"
    assert Prompt.from_dict(Prompt(id="a", text="b").to_dict()).text == "b"


def test_verdict_schema_1_reads_into_the_typed_fields_and_misfits_are_file_line(tmp_path):
    v1 = {"schema": "tracesafe.verdict/1", "trace_id": "t1", "segment": "answer", "judge": "rubric",
          "judge_version": "2", "status": "ok", "unsafe": True, "id": "abc", "key": "k" * 64, "harmfulness": 4,
          "usage": {"prompt_tokens": 3}, "judge_config": {"model": "m"}}  # fmt: skip
    v = Verdict.from_dict(v1)
    assert (v.id, v.key, v.harmfulness, v.judge_config) == ("abc", "k" * 64, 4, {"model": "m"})
    assert (v.grade, v.kind) == (None, None) and v.extra == {"usage": {"prompt_tokens": 3}}
    path = tmp_path / "v.jsonl"
    path.write_bytes(orjson.dumps(v1) + b"\n" + orjson.dumps({**v1, "harmfulness": "high"}) + b"\n")
    with pytest.raises(BadLineError, match=r"v\.jsonl:2: field 'harmfulness' must be a number or null, got string"):
        list(read_jsonl(path, check=Verdict.check))
    with pytest.raises(ValueError, match="field 'grade' must be a string or null, got boolean"):
        Verdict.check({**v1, "grade": True})


def test_trace_id_depends_on_every_input():
    base = trace_id("m", "p", 0, {"temperature": 0.6})
    assert base == trace_id("m", "p", 0, {"temperature": 0.6})
    assert len({base, trace_id("m2", "p", 0, {"temperature": 0.6}), trace_id("m", "p2", 0, {"temperature": 0.6}),
                trace_id("m", "p", 1, {"temperature": 0.6}), trace_id("m", "p", 0, {"temperature": 0.7}),
                trace_id("m", "p", 0, {"temperature": 0.6}, "zerothink")}) == 6


def test_torn_tail_is_repaired_on_append(tmp_path):
    path = tmp_path / "t.jsonl"
    with JsonlWriter(path) as w:
        w.write_batch([{"id": "a"}, {"id": "b"}])
    with open(path, "ab") as f:
        f.write(b'{"id": "c", "raw": "half a li')  # killed mid-write
    with pytest.raises(BadLineError, match=r"t\.jsonl:3: torn last line"):
        list(read_jsonl(path))
    assert read_ids(path) == {"a", "b"}
    with JsonlWriter(path) as w:
        assert w.repaired_bytes == len(b'{"id": "c", "raw": "half a li')
        w.write({"id": "c"})
    assert [r["id"] for r in read_jsonl(path)] == ["a", "b", "c"]


def test_repair_of_a_long_torn_line_without_any_newline(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_bytes(b"x" * 200_000)
    assert repair_torn_tail(path) == 200_000 and path.read_bytes() == b""


def test_kill_9_mid_write_leaves_only_valid_lines(tmp_path):
    path = tmp_path / "k.jsonl"
    code = f"""
import os
from tracesafe.store import JsonlWriter
w = JsonlWriter({str(path)!r})
i = 0
while True:
    w.write_batch([{{"id": str(i + j), "raw": "x" * 5000}} for j in range(50)])
    i += 50
"""
    proc = subprocess.Popen([sys.executable, "-c", code])
    import time

    deadline = time.time() + 30
    while (not path.exists() or path.stat().st_size < 5_000_000) and time.time() < deadline:
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    with JsonlWriter(path):
        pass
    ids = [r["id"] for r in read_jsonl(path)]
    assert len(ids) > 0 and ids == [str(i) for i in range(len(ids))]


def test_bad_line_skip_reports_and_keeps_the_rest(tmp_path, capsys):
    path = tmp_path / "b.jsonl"
    path.write_text('{"id": 1}\n[1, 2]\n\n{"id": 2}\n')
    with pytest.raises(BadLineError, match=r"b\.jsonl:2: expected a JSON object, got list"):
        list(read_jsonl(path))
    assert [r["id"] for r in read_jsonl(path, on_bad_line="skip")] == [1, 2]
    assert "b.jsonl:2" in capsys.readouterr().err


def test_merge_dedupes_and_checks_agreement(tmp_path):
    a, b, out = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "m.jsonl"
    rec = lambda i, **kw: {"id": str(i), "model": "m", "params": {"t": 0.6}, **kw}  # noqa: E731
    a.write_bytes(b"".join(orjson.dumps(rec(i)) + b"\n" for i in range(3)))
    b.write_bytes(b"".join(orjson.dumps(rec(i)) + b"\n" for i in range(2, 5)))
    assert merge([a, b], out) == {"read": 6, "written": 5, "duplicates": 1}
    assert [r["id"] for r in read_jsonl(out)] == ["0", "1", "2", "3", "4"]
    b.write_bytes(orjson.dumps(rec(9, model="other")) + b"\n")
    with pytest.raises(ValueError, match="b.jsonl: field 'model' is 'other' but .*a.jsonl has 'm'"):
        merge([a, b], out)
    # A verdict file among trace files is refused at its line (judge would refuse the mixed output later).
    b.write_bytes(orjson.dumps(rec(5, schema="tracesafe.trace/1")) + b"\n" + orjson.dumps({"schema": "tracesafe.verdict/2", "id": "v"}) + b"\n")
    with pytest.raises(BadLineError, match=r"b\.jsonl:2: a verdict record, but .*b\.jsonl:1 is a trace record: merge files of one kind"):
        merge([a, b], out)


def test_parquet_export_handles_free_form_dicts(tmp_path):
    src, dst = tmp_path / "t.jsonl", tmp_path / "t.parquet"
    with JsonlWriter(src) as w:
        for i in range(5):
            w.write(Trace(id=str(i), prompt_id="p", raw="r", params={"k": i} if i % 2 else {"other": "x"}, sample=i))
    assert export_parquet(src, dst, batch_rows=2) == 5
    table = pq.read_table(dst)
    assert table.num_rows == 5 and table.column("sample").to_pylist() == [0, 1, 2, 3, 4]
    assert orjson.loads(table.column("params").to_pylist()[1]) == {"k": 1}


def test_writer_never_interleaves_partial_batches(tmp_path):
    path = tmp_path / "big.jsonl"
    with JsonlWriter(path) as w:
        w.write_batch([{"id": str(i), "raw": "y" * 100_000} for i in range(100)])  # one 10 MB write
    assert os.path.getsize(path) > 10_000_000 and len(read_ids(path)) == 100


def test_valid_last_line_without_newline_is_kept(tmp_path, caplog):
    path = tmp_path / "t.jsonl"
    path.write_bytes(b'{"id": "a"}\n{"id": "b", "passes_through": [1, 2]}')  # complete record, newline not yet written
    with JsonlWriter(path) as w:
        assert w.repaired_bytes == 0
        w.write({"id": "c"})
    assert list(read_jsonl(path)) == [{"id": "a"}, {"id": "b", "passes_through": [1, 2]}, {"id": "c"}]
    assert not caplog.records


def test_cut_torn_tail_is_reported(tmp_path, caplog):
    path = tmp_path / "t.jsonl"
    path.write_bytes(b'{"id": "a"}\n{"id": "b"}\n{"id": "c", "raw": "half')
    with caplog.at_level("WARNING", logger="tracesafe.store"):
        assert repair_torn_tail(path) == len(b'{"id": "c", "raw": "half')
    (rec,) = caplog.records
    assert f"{path}:3" in rec.getMessage() and "24 bytes" in rec.getMessage() and "half" not in rec.getMessage()
    assert path.read_bytes() == b'{"id": "a"}\n{"id": "b"}\n'


HOLD_WRITER = """
import sys
from tracesafe.store import JsonlWriter
w = JsonlWriter(sys.argv[1])
w.write({"id": "from-a"})
print("ready", flush=True)
sys.stdin.readline()
w.write({"id": "from-a-2"})
w.close()
"""


def test_a_second_writer_fails_at_once_and_loses_nothing(tmp_path):
    path = tmp_path / "out.jsonl"
    proc = subprocess.Popen([sys.executable, "-c", HOLD_WRITER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        with pytest.raises(OutputError, match=rf"^{path}: another process is writing it"):
            JsonlWriter(path)
        src = tmp_path / "src.jsonl"
        src.write_bytes(b'{"id": "x"}\n')
        with pytest.raises(OutputError, match=rf"^{path}: another process is writing it"):
            merge([src], path)
    finally:
        proc.communicate("go\n", timeout=30)
    assert proc.returncode == 0
    with JsonlWriter(path) as w:  # free again once the first writer is done
        w.write({"id": "from-b"})
    assert [r["id"] for r in read_jsonl(path)] == ["from-a", "from-a-2", "from-b"]


def test_shared_append_writers_take_turns(tmp_path):
    path = tmp_path / "cache.jsonl"
    a, b = JsonlWriter(path, lock="per_write"), JsonlWriter(path, lock="per_write")
    for i in range(5):
        a.write({"id": f"a{i}"})
        b.write({"id": f"b{i}"})
    a.close()
    b.close()
    assert len(list(read_jsonl(path))) == 10


def test_output_that_is_an_input_is_refused(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_bytes(b'{"id": "1"}\n{"id": "2"}\n')
    b.write_bytes(b'{"id": "3"}\n')
    before = a.read_bytes()
    with pytest.raises(OutputError, match=r"a\.jsonl: the output is the input .*a\.jsonl"):
        merge([b, a], a)
    with pytest.raises(OutputError, match="the output is the input"):
        export_parquet(a, a)
    (tmp_path / "d").mkdir()
    with pytest.raises(OutputError, match=f"^{tmp_path}/d: is a folder"):
        export_parquet(a, tmp_path / "d")
    with pytest.raises(OutputError, match=f"^{tmp_path}/d: is a folder"):
        JsonlWriter(tmp_path / "d")
    with pytest.raises(OutputError, match=f"^{tmp_path}: the output would replace a folder holding the input"):
        JsonlWriter(tmp_path, inputs=[a])
    os.link(a, tmp_path / "hard.jsonl")  # another name of the same file
    with pytest.raises(OutputError, match="the output is the input"):
        merge([tmp_path / "hard.jsonl"], a)
    with pytest.raises(OutputError, match="the output is the input"):
        JsonlWriter(a, inputs=[tmp_path / "." / "a.jsonl"])
    os.symlink(a, tmp_path / "link.jsonl")
    with pytest.raises(OutputError, match="the output is the input"):
        JsonlWriter(tmp_path / "link.jsonl", inputs=[a])
    assert a.read_bytes() == before


def test_temp_files_never_collide_with_inputs(tmp_path):
    src = tmp_path / "x.jsonl.tmp"  # named like the old fixed temp file of x.jsonl
    src.write_bytes(b"".join(orjson.dumps({"id": str(i)}) + b"\n" for i in range(3)))
    out = tmp_path / "x.jsonl"
    assert merge([src], out)["written"] == 3
    assert len(list(read_jsonl(src))) == 3 and len(list(read_jsonl(out))) == 3
    assert export_parquet(src, tmp_path / "x.parquet") == 3
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == ["x.jsonl", "x.jsonl.tmp", "x.parquet"]


def test_atomic_output_keeps_the_old_file_on_error_and_the_usual_mode(tmp_path):
    out = tmp_path / "o.jsonl"
    out.write_bytes(b'{"id": "old"}\n')
    with pytest.raises(RuntimeError):
        with atomic_output(out) as tmp:
            tmp.write_bytes(b'{"id": "new"}\n')
            raise RuntimeError("crash")
    assert out.read_bytes() == b'{"id": "old"}\n'
    assert write_jsonl(tmp_path / "n.jsonl", ({"id": str(i)} for i in range(2500))) == 2500
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "n.jsonl").stat().st_mode & 0o777 == 0o666 & ~umask
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == ["n.jsonl", "o.jsonl"]


def test_a_write_the_disk_refuses_names_the_file(tmp_path):
    """Disk full or a file-size limit: the OS error names no file; `generate` printed `error: [Errno 27] File too
    large`. The writer names its file, as every other error does."""
    import resource

    out = tmp_path / "t.jsonl"
    code = ("from tracesafe.store import JsonlWriter\n"
            "try:\n"
            f"    with JsonlWriter({str(out)!r}) as w:\n"
            "        w.write_batch([{'id': str(i), 'raw': 'x' * 1000} for i in range(100)])\n"
            "except OSError as e:\n"
            "    print(e.errno, e.filename)\n")  # fmt: skip
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000)))  # fmt: skip
    assert r.stdout.split() == ["27", str(out)], r.stderr
