"""The splitter policy: a corpus of real formats, property tests, and the file/CLI path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracesafe.split import HARMONY_CHANNEL, TAG_PAIRS, split_file, split_record, split_text
from tracesafe.store import BadLineError

CASES = [json.loads(line) for line in (Path(__file__).parent / "data/formats/cases.jsonl").read_text().splitlines()]
MARKERS = [m for pair in TAG_PAIRS for m in pair] + [HARMONY_CHANNEL, "<|begin_of_solution|>", "<|end_of_solution|>"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_real_formats(case):
    s = split_text(case["raw"], case.get("reasoning"), case.get("prompt_rendered"))
    assert (s.thinking, s.answer, s.status, s.rule) == (case["thinking"], case["answer"], case["status"], case["rule"])


# Text that cannot contain a marker, drawn to be marker-like often (angle brackets, pipes, "think").
def tokens(*pieces: list[str]):
    return st.lists(st.sampled_from([p for group in pieces for p in group]), max_size=30).map("".join)


plain = tokens(list("ab <>/|:\n\t思🙂"), ["think", "thought", "end", "channel"]).filter(
    lambda s: not any(m in s for m in MARKERS)
)
pair = st.sampled_from(TAG_PAIRS[:4])


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


@settings(max_examples=300)
@given(raw=tokens(MARKERS, list("ab \n<>|"), ["<|message|>", "<|end|>", "<|return|>", "analysis", "final"]), forced=st.booleans())
def test_segments_are_exact_substrings(raw, forced):
    """Whatever the input, thinking and answer are verbatim pieces of raw (harmony joins several analysis
    messages, so each line of its thinking is a piece) and the status is consistent with the pieces."""
    s = split_text(raw, prompt_rendered="<think>\n" if forced else None)
    assert s.answer in raw
    for piece in s.thinking.split("\n") if s.rule == "harmony" else [s.thinking]:
        assert piece in raw
    assert s.status in ("complete", "unterminated", "no_thinking")
    if s.status == "unterminated":
        assert s.answer == ""
    if s.status == "no_thinking":
        assert s.thinking == ""


def test_split_record_passes_fields_through():
    rec = {"id": "x", "raw": "<think>a</think>b", "custom": {"k": [1, 2]}}
    out = split_record(rec)
    assert out["custom"] == {"k": [1, 2]} and out["id"] == "x"
    assert (out["thinking"], out["answer"], out["split_status"], out["split_rule"]) == ("a", "b", "complete", "tag")


def test_split_file_and_bad_lines(tmp_path):
    src = tmp_path / "in.jsonl"
    lines = [orjson.dumps({"id": c["name"], **{k: c[k] for k in ("raw", "reasoning", "prompt_rendered") if k in c}}) for c in CASES]
    src.write_bytes(b"\n".join(lines[:3]) + b"\n{not json\n" + b"\n".join(lines[3:]) + b"\n")
    with pytest.raises(BadLineError, match=r"in\.jsonl:4: "):
        split_file(src, tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists() and not (tmp_path / "out.jsonl.tmp").exists()
    counts = split_file(src, tmp_path / "out.jsonl", on_bad_line="skip")
    assert counts["skipped"] == 1
    out = [orjson.loads(x) for x in (tmp_path / "out.jsonl").read_bytes().splitlines()]
    assert [o["id"] for o in out] == [c["name"] for c in CASES]
    assert [o["thinking"] for o in out] == [c["thinking"] for c in CASES]


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


@pytest.mark.parametrize("workers", [1, 2])
def test_split_file_in_chunks_keeps_order_and_line_numbers(tmp_path, workers):
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
    assert split_file(src, tmp_path / "o3.jsonl", workers=workers, chunk_bytes=4096, on_bad_line="skip")["skipped"] == 1


def test_split_file_empty_input(tmp_path):
    (tmp_path / "e.jsonl").write_bytes(b"")
    assert sum(split_file(tmp_path / "e.jsonl", tmp_path / "o.jsonl").values()) == 0
    assert (tmp_path / "o.jsonl").read_bytes() == b""
