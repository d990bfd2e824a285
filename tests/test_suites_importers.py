"""Built-in suites, user suite files, and importers of traces made elsewhere."""

from __future__ import annotations

import csv
import subprocess
import sys

import orjson
import pytest

from tracesafe._util.provenance import sha256_text
from tracesafe.importers import import_file
from tracesafe.store import BadLineError, read_jsonl
from tracesafe.suites import load_suite, suite_hash


def test_builtin_suites():
    sst = load_suite("sst")
    assert len(sst) == 100 and {p.label for p in sst} == {"harmful"}
    assert len({p.harm_area for p in sst}) == 5 and len({p.category for p in sst}) == 2
    xs = load_suite("xstest")
    assert len(xs) == 450
    assert sum(p.label == "benign" for p in xs) == 250 and sum(p.label == "harmful" for p in xs) == 200
    assert all(p.category.startswith("contrast_") for p in xs if p.label == "harmful")
    assert len({p.id for p in xs}) == 450
    assert suite_hash(sst) == suite_hash(load_suite("sst"))


def test_user_suites(tmp_path):
    path = tmp_path / "mine.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["question", "label", "category"])
        w.writerows([["q1", "unsafe", "c"], ["q2", "safe", ""], ["q1", "1", "c"]])
    ps = load_suite(path)
    assert [p.text for p in ps] == ["q1", "q2", "q1"] and [p.label for p in ps] == ["harmful", "benign", "harmful"]
    assert len({p.id for p in ps}) == 3 and ps[0].id == load_suite(path)[0].id and ps[1].category is None
    jl = tmp_path / "mine.jsonl"
    jl.write_text('{"id": "a", "prompt": "x", "extra": 1}\n{"id": "b", "text": "y"}\n')
    ps = load_suite(jl, id_field="id")
    assert [p.id for p in ps] == ["a", "b"] and ps[0].meta == {"extra": 1}
    # By default a content hash (stable when the file is reordered; the ids of existing traces depend on it), the
    # file's own id kept in meta (docs/suites.md).
    assert load_suite(jl)[0].id == f"mine-{sha256_text('x', 12)}" and load_suite(jl)[0].meta == {"id": "a", "extra": 1}
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "x"}\n{"body": "y"}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:2: no text in field 'prompt/instruction/question/text'"):
        load_suite(bad)
    badlabel = tmp_path / "badlabel.csv"
    badlabel.write_text("prompt,label\nx,maybe\n")
    with pytest.raises(ValueError, match=r"badlabel\.csv:2: label 'maybe'"):
        load_suite(badlabel)
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"instruction": ["i1", "i2"]}), tmp_path / "p.parquet")
    assert [p.text for p in load_suite(tmp_path / "p.parquet")] == ["i1", "i2"]


def test_headers_in_another_case_or_after_a_space_are_the_columns_they_name(tmp_path):
    """``Label`` or `` label`` (``prompt, label``) fell silently into meta: the prompts lost their labels."""
    f = tmp_path / "mine.csv"
    f.write_text("Prompt, Label,CATEGORY\nHow do I bake bread?, benign,food\nHow do I pick a lock?,harmful,crime\n")
    ps = load_suite(f)
    assert [(p.label, p.category, p.meta) for p in ps] == [("benign", "food", {}), ("harmful", "crime", {})]
    assert ps[0].id == f"mine-{sha256_text('How do I bake bread?', 12)}"  # the id does not depend on the header
    # A column the caller names is taken as named, not renamed first.
    assert [p.text for p in load_suite(f, text_field="Prompt")] == ["How do I bake bread?", "How do I pick a lock?"]


def test_a_suite_written_by_suites_show_reads_back_as_itself(tmp_path):
    """`suites show FILE -o OUT.jsonl` writes Prompt records; read back, they got new ids and a suite named after OUT,
    so traces generated from OUT were not those of FILE."""
    f = tmp_path / "mine.csv"
    f.write_text("prompt,label,category\nHow do I bake bread?,benign,food\n")
    out = tmp_path / "shown.jsonl"
    r = subprocess.run([sys.executable, "-m", "tracesafe.cli", "suites", "show", str(f), "-o", str(out)],
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert load_suite(out) == load_suite(f)
    out.write_text('{"schema": "tracesafe.prompt/1", "id": "x", "text": 5}\n')
    with pytest.raises(ValueError, match=r"shown\.jsonl:1: .*text"):
        load_suite(out)


def test_malformed_csv_is_a_located_error_not_a_silent_prompt(tmp_path):
    from tracesafe.importers import import_file
    from tracesafe.judges import evaluate_judge
    from tracesafe.store import BadLineError

    def write(name, text):
        (tmp_path / name).write_text(text)
        return tmp_path / name

    # Python's csv reads an unclosed quote as one cell running to the end of the file: a prompt made of
    # every later row. It must fail at the row where the quote opens (line 5: rows 2-3 are one quoted cell).
    unclosed = write("unclosed.csv", 'prompt,label\n"two\nlines",safe\nb,unsafe\n"c,unsafe\nd,safe\n')
    with pytest.raises(BadLineError, match=r"unclosed\.csv:5: malformed CSV"):
        load_suite(unclosed)
    with pytest.raises(BadLineError, match=r"wide\.csv:3: 3 fields, the header has 2"):
        load_suite(write("wide.csv", "prompt,label\na,safe\nb,safe,extra\n"))
    with pytest.raises(BadLineError, match=r"short\.csv:2: 1 field, the header has 2"):
        import_file("csv", write("short.csv", "prompt,response\nonly a prompt\n"), tmp_path / "t.jsonl")
    # The line of a row after a multi-line cell or a blank line is where that row starts.
    with pytest.raises(ValueError, match=r"late\.csv:5: label 'maybe'"):
        load_suite(write("late.csv", 'prompt,label\n"multi\nline",safe\n\nx,maybe\n'))
    # Gold files: PyRIT's leading comment lines and multi-line responses count in the line number.
    gold = write("gold.csv", '# dataset_version=1.0\nobjective,assistant_response,human_score\no,"a\nb",1\no,c,2\n')
    with pytest.raises(BadLineError, match=r"gold\.csv:5: human_score must be 0 or 1"):
        evaluate_judge("refusal", gold)


def test_import_generic_jsonl_and_csv(tmp_path):
    src = tmp_path / "t.jsonl"
    src.write_text(
        '{"question": "q", "output": "<think>t</think>a", "run": 1}\n'
        '{"question": "q", "output": "plain"}\n'
    )
    n = import_file("jsonl", src, tmp_path / "o.jsonl", model="m", prompt_field="question", response_field="output")
    recs = list(read_jsonl(tmp_path / "o.jsonl"))
    assert n == 2 and [r["sample"] for r in recs] == [0, 1] and recs[0]["prompt_id"] == recs[1]["prompt_id"]
    assert (recs[0]["thinking"], recs[0]["answer"], recs[0]["run"]) == ("t", "a", 1)
    assert recs[1]["split_status"] == "no_thinking" and len({r["id"] for r in recs}) == 2
    with pytest.raises(ValueError, match=r"t\.jsonl:1: no field 'resp'"):
        import_file("jsonl", src, tmp_path / "x.jsonl", response_field="resp")
    c = tmp_path / "t.csv"
    c.write_text('prompt,response,reasoning_content\np,"ans","multi\nline"\n')
    import_file("csv", c, tmp_path / "c.jsonl")
    (r,) = read_jsonl(tmp_path / "c.jsonl")
    assert (r["thinking"], r["answer"], r["split_rule"]) == ("multi\nline", "ans", "api_field")


def test_import_openai_responses(tmp_path):
    chat = {
        "id": "cmpl-1", "model": "deepseek-reasoner",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "A0", "reasoning_content": "R0"}, "finish_reason": "stop"},
            {"index": 1, "message": {"role": "assistant", "content": "A1", "reasoning": "R1"}, "finish_reason": "length"},
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 9},
    }
    batch = {"custom_id": "req-7", "response": {"status_code": 200, "body": {**chat, "id": "cmpl-2"}}}
    src = tmp_path / "o.jsonl"
    src.write_bytes(orjson.dumps(chat) + b"\n" + orjson.dumps(batch) + b"\n" + b'{"choices": []}\n')
    with pytest.raises(ValueError, match=r"o\.jsonl:3: no choices"):
        import_file("openai", src, tmp_path / "x.jsonl")
    src.write_bytes(orjson.dumps(chat) + b"\n" + orjson.dumps(batch) + b"\n")
    import_file("openai", src, tmp_path / "x.jsonl")
    recs = list(read_jsonl(tmp_path / "x.jsonl"))
    assert [(r["thinking"], r["answer"], r["finish_reason"]) for r in recs[:2]] == [("R0", "A0", "stop"), ("R1", "A1", "length")]
    assert recs[2]["prompt_id"] == "req-7" and recs[0]["model"] == "deepseek-reasoner"
    assert recs[0]["n_tokens"] == {"prompt": 5, "completion": 9}


def test_import_safechain(tmp_path):
    doc = {
        "meta_info": {"model": "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", "temperature": 0.6, "topp": 0.95, "max_tokens": 8192},
        "data": [
            {"instruction": "i1", "prompt": "<｜User｜>i1<｜Assistant｜><think>\n", "response": ["t1</think>\n\na1", "t2"]},
            {"instruction": "i2", "prompt": [{"role": "user", "content": "i2"}], "thoughts": ["th"], "solution": ["so"],
             "response": ["<think>\nth</think>\n\nso"]},
        ],
    }
    src = tmp_path / "sc.json"
    src.write_bytes(orjson.dumps(doc))
    assert import_file("safechain", src, tmp_path / "o.jsonl") == 3
    r = list(read_jsonl(tmp_path / "o.jsonl"))
    assert [(x["thinking"], x["answer"], x["split_status"]) for x in r] == [
        ("t1", "a1", "complete"), ("t2", "", "unterminated"), ("th", "so", "complete")]
    assert r[0]["params"]["temperature"] == 0.6 and r[0]["model"].endswith("Qwen-7B")
    src.write_text('{"data": [{"instruction": "x"}]}')
    with pytest.raises(ValueError, match=r"sc\.json:1: data\[0\] needs 'instruction' and a 'response' list"):
        import_file("safechain", src, tmp_path / "o2.jsonl")


def test_import_cli_reports_file_and_line(tmp_path):
    src = tmp_path / "broken.jsonl"
    src.write_text('{"prompt": "p", "response": "r"}\n{oops\n')
    r = subprocess.run([sys.executable, "-m", "tracesafe.cli", "import", "jsonl", str(src), "-o", str(tmp_path / "o.jsonl")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and f"{src}:2:" in r.stderr and not (tmp_path / "o.jsonl").exists()
    with pytest.raises(BadLineError):
        import_file("jsonl", src, tmp_path / "o.jsonl")
    assert import_file("jsonl", src, tmp_path / "o.jsonl", on_bad_line="skip") == 1


def test_user_suite_from_a_local_datasets_directory(tmp_path):
    datasets = pytest.importorskip("datasets")
    ds = datasets.DatasetDict({"train": datasets.Dataset.from_dict({"question": ["a?"]}),
                               "test": datasets.Dataset.from_dict({"question": ["q1?", "q2?"], "label": ["unsafe", "safe"]})})  # fmt: skip
    ds.save_to_disk(str(tmp_path / "hfds"))
    ps = load_suite(tmp_path / "hfds")
    assert [(p.text, p.label) for p in ps] == [("q1?", "harmful"), ("q2?", "benign")] and ps[0].suite == "hfds"
