"""The splitter policy: a corpus of real formats, property tests, and the file/CLI path."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracesafe import formats
from tracesafe.split import split_file, split_record, split_text
from tracesafe.store import BadLineError

CASES = [json.loads(line) for line in (Path(__file__).parent / "data/formats/cases.jsonl").read_text().splitlines()]
TAG_PAIRS = [(p.opens[0], p.closes[0]) for name in ("think", "seed_oss", "sky_t1") for p in formats.get(name).pairs]
MARKERS = sorted({m for f in formats.all_formats() for m in f.markers}, key=len, reverse=True)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_real_formats(case):
    s = split_text(case["raw"], case.get("reasoning"), case.get("prompt_rendered"), format=case.get("format"),
                   chat_template_kwargs=case.get("chat_template_kwargs"))  # fmt: skip
    assert (s.thinking, s.answer, s.status, s.rule) == (case["thinking"], case["answer"], case["status"], case["rule"])
    assert s.opener_mid_text == case.get("opener_mid_text", False)
    if "split_format" in case:
        assert s.format == case["split_format"]
    if s.rule != "api_field":  # there the thinking comes from another field
        assert not _unaccounted(case["raw"], s)


VLLM = [json.loads(line) for line in (Path(__file__).parent / "data/formats/vllm_cases.jsonl").read_text().splitlines()]
FORMATS_DOC = (Path(__file__).parents[1] / "docs/formats.md").read_text()


@pytest.mark.parametrize("case", VLLM, ids=[f"{c['format']}-{c['case']}" for c in VLLM])
def test_agrees_with_vllm_parsers(case):
    """vLLM's own non-streaming test cases for each family (cited per line): the same split up to
    surrounding whitespace, except where a documented policy differs (docs/formats.md's table)."""
    s = split_text(case["raw"], format=case["format"], chat_template_kwargs=case.get("chat_template_kwargs"))
    if "difference" in case:
        assert f"`{case['difference']}`" in FORMATS_DOC.split("## Differences from vLLM")[1]
        assert (s.thinking, s.answer) == (case["thinking"], case["answer"])
        assert (s.thinking, s.answer) != ((case["vllm_reasoning"] or "").strip(), (case["vllm_content"] or "").strip())
    else:
        assert (s.thinking, s.answer) == ((case["vllm_reasoning"] or "").strip(), (case["vllm_content"] or "").strip())
    assert s.format == case["format"]
    assert not _unaccounted(case["raw"], s)


GAP = "(?:" + "|".join(map(re.escape, MARKERS)) + r"|\s)*"
HARMONY_HEADER = re.compile(r"<\|start\|>\w*|<\|channel\|>[^<]*(?:<\|constrain\|>[^<]*)?<\|message\|>|<\|(?:end|return|call)\|>")


def _unaccounted(raw: str, s) -> str:
    """What of ``raw`` is neither thinking, answer, a marker nor whitespace (must be nothing). The answer
    may be joined from the text before a mid-text opener and the text after the thought."""
    if s.rule == "harmony":  # headers are not text
        rest = HARMONY_HEADER.sub("\0", raw)
        for piece in sorted([*s.thinking.split("\n"), *s.answer.split("\n")], key=len, reverse=True):
            assert piece in rest, f"{piece!r} is not in {rest!r}"
            rest = rest.replace(piece, "\0", 1)
        return rest.replace("\0", "").strip()
    t, a = s.thinking, s.answer
    for order in [(t, a), (a, t), *((a[:k], t, a[k:]) for k in range(1, len(a)))]:
        if re.fullmatch(GAP + GAP.join(map(re.escape, order)) + GAP, raw, re.S):
            return ""
    return raw


# Text that cannot contain a marker, drawn to be marker-like often (angle brackets, pipes, "think").
def tokens(*pieces: list[str]):
    return st.lists(st.sampled_from([p for group in pieces for p in group]), max_size=30).map("".join)


plain = tokens(list("ab <>/|:\n\t思🙂"), ["think", "thought", "end", "channel"]).filter(
    lambda s: not any(m in s for m in MARKERS)
)
pair = st.sampled_from(TAG_PAIRS[:4])
FORMAT_NAMES = ["auto", *(f.name for f in formats.all_formats())]


@given(t=plain, a=plain, p=pair)
def test_tag_pair(t, a, p):
    s = split_text(f"{p[0]}{t}{p[1]}{a}")
    assert (s.thinking, s.answer, s.status, s.rule) == (t.strip(), a.strip(), "complete", "tag")


@given(t=plain, a=plain, a2=plain, p=pair)
def test_first_closing_marker_wins(t, a, a2, p):
    s = split_text(f"{p[0]}{t}{p[1]}{a}{p[1]}{a2}")
    assert s.thinking == t.strip()
    assert s.answer == f"{a}{p[1]}{a2}".strip()


@given(t=plain, a=plain, ws=st.sampled_from(["", "\n", "\n\n", " \n"]), p=pair)
def test_template_forced(t, a, ws, p):
    s = split_text(f"{t}{p[1]}{a}", prompt_rendered=f"<|User|>q<|Assistant|>{p[0]}{ws}")
    assert (s.thinking, s.answer, s.status, s.rule) == (t.strip(), a.strip(), "complete", "template_forced")


@given(t=plain, p=pair)
def test_unterminated(t, p):
    s = split_text(f"{p[0]}{t}")
    assert (s.thinking, s.answer, s.status) == (t.strip(), "", "unterminated")
    forced = split_text(t, prompt_rendered=f"x{p[0]}\n")
    assert (forced.thinking, forced.answer, forced.status) == (t.strip(), "", "unterminated")


@given(t=plain, a=plain, p=pair)
def test_bare_close(t, a, p):
    s = split_text(f"{t}{p[1]}{a}")
    assert (s.thinking, s.answer, s.status, s.rule) == (t.strip(), a.strip(), "complete", "bare_close")


@given(raw=plain)
def test_no_marker(raw):
    s = split_text(raw)
    assert (s.thinking, s.answer, s.status, s.rule) == ("", raw.strip(), "no_thinking", "none")


@given(reasoning=plain.filter(lambda s: s != ""), raw=st.text())
def test_api_field_always_wins(reasoning, raw):
    s = split_text(raw, reasoning=reasoning, prompt_rendered="<think>\n")
    assert (s.thinking, s.answer, s.status, s.rule) == (reasoning.strip(), raw.strip(), "complete", "api_field")


def test_api_field_thought_cut_off_is_unterminated():
    """A server's reasoning parser puts a thought that never closed in the reasoning field and returns no content:
    with finish_reason "length" that is a thought cut at max_tokens, as a tag-based one is."""
    assert split_text("", reasoning="still thinking", finish_reason="length").status == "unterminated"
    assert split_text("  ", reasoning="still thinking", finish_reason="length").status == "unterminated"
    assert split_text("", reasoning="done thinking", finish_reason="stop").status == "complete"
    assert split_text("The answer, cut", reasoning="done", finish_reason="length").status == "complete"  # the thought closed
    for inspect_stop_reason in ("max_tokens", "model_length"):  # inspect_ai's names for the same cut
        assert split_text("", reasoning="still", finish_reason=inspect_stop_reason).status == "unterminated"
    rec = split_record({"raw": "", "reasoning": "still thinking", "finish_reason": "length"})
    assert (rec["thinking"], rec["answer"], rec["split_status"], rec["split_rule"]) == ("still thinking", "", "unterminated", "api_field")


# Every marker but harmony's (whose header words are not markers), as whole tokens among marker-like text.
TAG_MARKERS = [m for m in MARKERS if m not in formats.get("harmony").markers]


@settings(max_examples=400, deadline=None)  # a regex alignment per example; slow on a loaded machine
@given(raw=tokens(TAG_MARKERS, list("ab \n<>|[]/"), ["<tool_call>", "<|tool_calls_section_begin|>", "Here is my "]),
       fmt=st.sampled_from(FORMAT_NAMES), forced=st.sampled_from([None, "<think>\n", "[THINK]", "</think>\n\n"]))  # fmt: skip
def test_every_byte_is_accounted_for(raw, fmt, forced):
    """Whatever the input and format, thinking + answer + markers + whitespace make up all of raw, and
    the status is consistent with the segments."""
    s = split_text(raw, prompt_rendered=forced, format=fmt)
    assert not _unaccounted(raw, s)
    assert s.status in ("complete", "unterminated", "no_thinking")
    if s.status == "no_thinking":
        assert s.thinking == ""


body = tokens(list("qxzw \n思"), ["<", ">"])
channel = st.sampled_from(["analysis", "final", "commentary to=functions.get", "commentary"])
message = st.tuples(channel, body, st.sampled_from(["<|end|>", "<|return|>", "<|call|>", ""]))


@settings(max_examples=300, deadline=None)
@given(prefix=body, messages=st.lists(message, max_size=5), role=st.booleans())
def test_harmony_every_byte_is_accounted_for(prefix, messages, role):
    raw = prefix + "".join(f"{'<|start|>assistant' if role else ''}<|channel|>{c}<|message|>{b}{e}" for c, b, e in messages)
    s = split_text(raw)
    assert not _unaccounted(raw, s)
    if messages:
        assert s.rule == "harmony"
        assert all(b.strip() in s.thinking for c, b, _ in messages if c == "analysis")


def test_split_record_passes_fields_through():
    rec = {"id": "x", "raw": "<think>a</think>b", "custom": {"k": [1, 2]}}
    out = split_record(rec)
    assert out["custom"] == {"k": [1, 2]} and out["id"] == "x"
    assert (out["thinking"], out["answer"], out["split_status"], out["split_rule"]) == ("a", "b", "complete", "tag")


def test_split_file_and_bad_lines(tmp_path):
    src = tmp_path / "in.jsonl"
    cases = [c for c in CASES if "format" not in c]
    lines = [orjson.dumps({"id": c["name"], "params": {"chat_template_kwargs": c.get("chat_template_kwargs")},
                           **{k: c[k] for k in ("raw", "reasoning", "prompt_rendered") if k in c}}) for c in cases]  # fmt: skip
    src.write_bytes(b"\n".join(lines[:3]) + b"\n{not json\n" + b"\n".join(lines[3:]) + b"\n")
    with pytest.raises(BadLineError, match=r"in\.jsonl:4: "):
        split_file(src, tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists() and not (tmp_path / "out.jsonl.tmp").exists()
    counts = split_file(src, tmp_path / "out.jsonl", on_bad_line="skip")
    assert counts["skipped"] == 1
    out = [orjson.loads(x) for x in (tmp_path / "out.jsonl").read_bytes().splitlines()]
    assert [o["id"] for o in out] == [c["name"] for c in cases]
    assert [(o["thinking"], o["answer"], o["split_rule"]) for o in out] == [(c["thinking"], c["answer"], c["rule"]) for c in cases]
    assert [o.get("split_opener_mid_text", False) for o in out] == [c.get("opener_mid_text", False) for c in cases]
    assert all(o["split_format"] == c["split_format"] for o, c in zip(out, cases) if "split_format" in c)


def test_split_cli(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"raw": "<think>t</think>a"}\n{"raw": 3}\n')
    r = subprocess.run([sys.executable, "-m", "tracesafe.cli", "split", str(src), "-o", str(tmp_path / "o.jsonl")], capture_output=True, text=True)
    assert r.returncode == 2 and f"{src}:2: record has no string field 'raw'" in r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "tracesafe.cli", "split", str(src), "-o", str(tmp_path / "o.jsonl"), "--on-bad-line", "skip"],
        capture_output=True, text=True,
    )
    assert r.returncode == 0, r.stderr
    assert orjson.loads((tmp_path / "o.jsonl").read_bytes())["answer"] == "a"
    assert f"skipped {src}:2: record has no string field 'raw'" in r.stderr  # named, as the importers name theirs


@pytest.mark.parametrize("workers", [1, 2])
def test_split_file_in_chunks_keeps_order_and_line_numbers(tmp_path, workers, caplog):
    src = tmp_path / "many.jsonl"
    lines = [orjson.dumps({"id": i, "raw": f"<think>t{i}</think>a{i}" + "x" * (i % 50)}) for i in range(3000)]
    src.write_bytes(b"\n".join(lines) + b"\n")
    counts = split_file(src, tmp_path / "o.jsonl", workers=workers, chunk_bytes=4096)
    out = [orjson.loads(x) for x in (tmp_path / "o.jsonl").read_bytes().splitlines()]
    assert counts["complete"] == 3000 and [o["id"] for o in out] == list(range(3000))
    assert out[2999]["thinking"] == "t2999"
    lines[2500] = b"{broken"
    src.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(BadLineError, match=r"many\.jsonl:2501: "):
        split_file(src, tmp_path / "o2.jsonl", workers=workers, chunk_bytes=4096)
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix != ".lock") == ["many.jsonl", "o.jsonl"]
    with caplog.at_level("WARNING", logger="tracesafe.split"):
        assert split_file(src, tmp_path / "o3.jsonl", workers=workers, chunk_bytes=4096, on_bad_line="skip")["skipped"] == 1
    (msg,) = [r.getMessage() for r in caplog.records]  # the line named in the whole file, whichever worker read it
    assert msg.startswith(f"skipped {src}:2501: ")


def test_split_file_empty_input(tmp_path):
    (tmp_path / "e.jsonl").write_bytes(b"")
    assert sum(split_file(tmp_path / "e.jsonl", tmp_path / "o.jsonl").values()) == 0
    assert (tmp_path / "o.jsonl").read_bytes() == b""


def test_formats_cli_and_docs_list_every_format(tmp_path):
    r = subprocess.run([sys.executable, "-m", "tracesafe.cli", "formats", "list"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    listed = [line.split()[0] for line in r.stdout.splitlines()]
    assert listed == [f.name for f in formats.all_formats()]
    table = FORMATS_DOC.split("\n## Formats\n")[1].split("\n## Differences from vLLM\n")[0]
    assert all(f"| `{name}` |" in table for name in listed)


def test_split_cli_format_override(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"raw": "plan<|tool_calls_section_begin|>call"}\n{"raw": "<think>t</think>a"}\n')
    r = subprocess.run([sys.executable, "-m", "tracesafe.cli", "split", str(src), "-o", str(tmp_path / "o.jsonl"), "--format", "kimi_k2"],
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = [orjson.loads(x) for x in (tmp_path / "o.jsonl").read_bytes().splitlines()]
    assert [(o["thinking"], o["answer"], o["split_format"]) for o in out] == [
        ("plan", "<|tool_calls_section_begin|>call", "kimi_k2"), ("t", "a", "kimi_k2")]
    r = subprocess.run([sys.executable, "-m", "tracesafe.cli", "split", str(src), "-o", str(tmp_path / "x.jsonl"), "--format", "nope"],
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "unknown reasoning format 'nope'" in r.stderr
    assert not (tmp_path / "x.jsonl").exists()


def test_positional_signature_and_resplit_replaces_fields(tmp_path):
    import tracesafe

    assert tracesafe.split_text("<think>a</think>b", None, None).thinking == "a"
    src = tmp_path / "in.jsonl"
    src.write_bytes(orjson.dumps({"raw": "x</think>y", "thinking": "old", "split_opener_mid_text": True}) + b"\n")
    split_file(src, tmp_path / "o.jsonl")
    out = orjson.loads((tmp_path / "o.jsonl").read_bytes())
    assert (out["thinking"], out["split_rule"], "split_opener_mid_text" in out) == ("x", "bare_close", False)


def _odd_lines() -> bytes:
    """Lines as other writers leave them: ASCII escapes and spaces, CRLF and trailing blanks, indentation,
    blank lines, records split before (their fields are replaced), duplicate keys, no final newline."""
    lines = []
    for i, c in enumerate(c for c in CASES if "format" not in c):
        rec = {"id": c["name"], **{k: c[k] for k in ("raw", "reasoning", "prompt_rendered") if k in c}}
        lines += [
            json.dumps(rec).encode(),
            orjson.dumps(rec) + b" \t\r",
            b"  " + orjson.dumps({**rec, "thinking": "old", "split_opener_mid_text": True, "n": [i, 2.5, None]}),
            b"",
            b'{"raw": "dup</think>x", ' + orjson.dumps(rec)[1:],
        ]
    return b"\n".join(lines)


@pytest.mark.parametrize("workers", [1, 2])
def test_split_file_output_is_each_line_spliced(tmp_path, workers):
    # The output is the input line with the split fields appended, whatever the line's spacing; a record
    # split before is written anew; one process or several write the same bytes.
    src = tmp_path / "odd.jsonl"
    src.write_bytes(_odd_lines())
    split_file(src, tmp_path / "o.jsonl", workers=workers, chunk_bytes=2048)
    got = (tmp_path / "o.jsonl").read_bytes().splitlines(keepends=True)
    want = []
    for line in src.read_bytes().splitlines():
        if line.strip():
            rec = orjson.loads(line)
            added = ("thinking", "answer", "split_status", "split_rule", "split_format", "split_opener_mid_text")
            if any(k in rec for k in added):
                want.append(orjson.dumps(split_record({k: v for k, v in rec.items() if k not in added}), option=orjson.OPT_APPEND_NEWLINE))
            else:
                fields = {k: v for k, v in split_record(dict(rec)).items() if k not in rec}
                want.append(line.rstrip(b" \t\r")[:-1] + b"," + orjson.dumps(fields, option=orjson.OPT_APPEND_NEWLINE)[1:])
    assert got == want


def test_split_file_worker_that_dies_is_an_error_not_a_hang(tmp_path):
    # A worker killed mid-file (the kernel's out-of-memory killer) used to leave the process pool waiting
    # forever for its result.
    script = """
import importlib, os, sys
S = importlib.import_module("tracesafe.split")
real = S.split_of
def dies_on_one(rec, format=None):
    if rec["raw"] == "die":
        os._exit(9)
    return real(rec, format)
S.split_of = dies_on_one
try:
    S.split_file(sys.argv[1], sys.argv[2], workers=2, chunk_bytes=4096)
except ChildProcessError as e:
    print(e)
"""
    src = tmp_path / "in.jsonl"
    src.write_bytes(b"".join(orjson.dumps({"id": i, "raw": "die" if i == 2000 else f"<think>t{i}</think>a"}) + b"\n" for i in range(3000)))
    r = subprocess.run([sys.executable, "-c", script, str(src), str(tmp_path / "o.jsonl")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"{src}: a split worker process stopped (exit code 9)"
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix != ".lock") == ["in.jsonl"]


SLOW_SPLIT = """
import importlib, sys, time
S = importlib.import_module("tracesafe.split")
real = S.split_of
def slow(rec, format=None):  # a big file's worth of time, so that the signal lands mid-split
    time.sleep(0.002)
    return real(rec, format)
S.split_of = slow
from tracesafe.cli import app
app(["split", sys.argv[1], "-o", sys.argv[2]])
"""


def _children(pid: int) -> list[int]:
    found = []
    for d in Path("/proc").iterdir():
        try:
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) if d.name.isdigit() else None
        except OSError:
            continue
        if ppid == pid:
            found.append(int(d.name))
    return found


def _alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="split runs its workers only with two CPUs or more")
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGKILL"])
def test_split_stopped_leaves_no_worker_behind(tmp_path, sig):
    """A new user's probe: `kill` of a split running on several workers left them waiting forever (each held a copy of
    this process's pipe ends, so none saw it die) and the temporary output behind. SIGTERM now stops it as Ctrl-C does
    (temporary file removed, exit 1 and a line saying so); after SIGKILL the workers end with it."""
    import signal
    import time

    src, out = tmp_path / "in.jsonl", tmp_path / "o.jsonl"
    src.write_bytes(b"".join(orjson.dumps({"id": i, "raw": f"<think>t{i}</think>a"}) + b"\n" for i in range(400_000)))
    proc = subprocess.Popen([sys.executable, "-c", SLOW_SPLIT, str(src), str(out)], stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while len(workers := _children(proc.pid)) < 2 and time.time() < deadline:
        time.sleep(0.05)
    assert len(workers) >= 2, "the split did not start its workers"
    proc.send_signal(getattr(signal, sig))
    _, err = proc.communicate(timeout=60)
    deadline = time.time() + 20
    while any(map(_alive, workers)) and time.time() < deadline:
        time.sleep(0.1)
    assert not any(map(_alive, workers))
    if sig == "SIGTERM":
        assert proc.returncode == 1 and err.strip().splitlines()[-1] == f"interrupted: {out} was not written", err
        assert sorted(p.name for p in tmp_path.iterdir() if p.suffix != ".lock") == ["in.jsonl"]
    else:
        assert proc.returncode == -signal.SIGKILL and not out.exists()


def test_families_that_join_the_prefix_to_the_answer_are_the_documented_ones():
    """docs/formats.md names every family whose answer is not one substring of raw (prefix_is_content)."""
    doc = (Path(__file__).resolve().parent.parent / "docs" / "formats.md").read_text()
    joined = sorted(f.name for f in formats.all_formats() if f.prefix_is_content)
    assert joined == ["gemma4", "magistral", "step3p5"]
    assert f"`{joined[0]}`, `{joined[1]}` and `{joined[2]}`, join that text" in " ".join(doc.split())
    s = split_text("Sure.<|channel>thought\nT<channel|>Here it is", format="gemma4")
    assert (s.thinking, s.answer) == ("T", "Sure.Here it is")
