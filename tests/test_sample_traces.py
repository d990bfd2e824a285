"""The shipped demo traces (traces/sample_traces.jsonl): reproduced bit for bit by their script, and their harmful
text real, human-labelled and unseen by the offline judge."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
from test_judges import SHARED, needs_shared

from tracesafe.split import split_record

REPO = Path(__file__).resolve().parent.parent
TRACES = REPO / "traces" / "sample_traces.jsonl"
sys.path.insert(0, str(REPO / "scripts"))


def test_script_reproduces_the_shipped_traces(tmp_path):
    out = tmp_path / "t.jsonl"
    r = subprocess.run([sys.executable, "scripts/make_sample_traces.py", "-o", str(out)], cwd=REPO, capture_output=True,
                       text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == TRACES.read_bytes(), "traces/sample_traces.jsonl is stale: run scripts/make_sample_traces.py"
    assert r.stdout == f"wrote 240 synthetic traces -> {out}\n" and not r.stderr  # a count, never trace text


def test_harmful_text_is_human_labelled_harmful_and_on_its_own_behavior():
    import judge_data as jd
    import make_sample_traces as mst

    val = jd.harmbench_val_rows(mst.HARMBENCH_VAL, REPO / "tracesafe/suites/data/harmbench_behaviors_text_test.csv")
    harmful = {r.text: r.prompt for r in val if r.label == 1}
    traces = [split_record(orjson.loads(x)) for x in TRACES.read_bytes().splitlines()]
    placed = {"thinking": 0, "answer": 0}
    by_model = dict.fromkeys(mst.MODELS, 0)
    for t in traces:
        for text, prompt in harmful.items():
            head = text[:300]  # truncated thinking (finish_reason length) keeps at least this much
            for seg in placed:
                if head in (t.get(seg) or ""):
                    assert t["suite"] == "harmbench" and t["prompt"] == prompt, t["id"]
                    placed[seg] += 1
                    by_model[t["model"]] += seg == "thinking"
    # The models differ as their made-up rates say: more harmful thinking for the R1-like one, little for gpt-oss.
    assert placed == {"thinking": 52, "answer": 13}, placed
    assert list(by_model.values()) == [28, 20, 4], by_model
    assert {t["prompt_id"] for t in traces if t["suite"] == "harmbench"} == set(mst.DEMO_BEHAVIORS)


@needs_shared
def test_demo_behaviors_are_held_out_from_the_offline_judge():
    """The demo's harmful text is in the offline judge's test split: the demo shows the judge on text it never
    trained on (as scripts/train_offline_judge.py splits HarmBench's groups)."""
    import judge_data as jd
    import make_sample_traces as mst
    import train_offline_judge as tj

    from tracesafe.judges.offline import load_head
    from tracesafe.suites import load_suite

    meta = load_head()["meta"]
    assert not meta["holdout_categories"]
    human = tj.load_human(SHARED)
    test = set()  # as build() splits: per source, a group held out by any source is never trained on
    for src in sorted({r.source for r in human}):
        test |= tj.split_groups([r.group for r in human if r.source == src], 0.3, meta["seed"])
    text = {p.id: p.text for p in load_suite("harmbench")}
    assert [b for b in mst.DEMO_BEHAVIORS if jd.group_of(text[b]) not in test] == []
