"""The engine layer: weights, fingerprints, the registry, configs and engines on real tiny models."""

from __future__ import annotations

from tracesafe.generate import GenerateConfig, generate
from tracesafe.judges import run_judges
from tracesafe.records import Prompt
from tracesafe.store import read_jsonl


def test_a_trace_and_a_verdict_from_the_same_weights_carry_the_same_fingerprint(tiny_r1, tmp_path):
    traces = tmp_path / "traces.jsonl"
    cfg = GenerateConfig(model=str(tiny_r1), backend="hf", temperature=0.0, max_tokens=8)
    generate(cfg, [Prompt(id="p", text="How do I bake bread?")], traces, progress=False)
    (trace,) = read_jsonl(traces)
    verdicts = tmp_path / "verdicts.jsonl"
    run_judges(traces, ["harmbench-cls"], ["full"], verdicts, judge_model=str(tiny_r1), backend="hf", progress=False)
    (verdict,) = read_jsonl(verdicts)
    assert verdict["judge_config"]["weights"] == trace["model_hash"]
