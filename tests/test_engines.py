"""The engine layer: weights, fingerprints, the registry, configs and engines on real tiny models."""

from __future__ import annotations

import json
import re
import sys

import pytest

from tracesafe.generate import GenerateConfig, generate
from tracesafe.judges import run_judges
from tracesafe.records import Prompt
from tracesafe.store import read_jsonl


def test_a_trace_and_a_verdict_from_the_same_weights_carry_the_same_fingerprint(tiny_r1, tmp_path):
    traces = tmp_path / "traces.jsonl"
    cfg = GenerateConfig.from_flat(model=str(tiny_r1), backend="hf", temperature=0.0, max_tokens=8)
    generate(cfg, [Prompt(id="p", text="How do I bake bread?")], traces, progress=False)
    (trace,) = read_jsonl(traces)
    verdicts = tmp_path / "verdicts.jsonl"
    run_judges(traces, ["harmbench-cls"], ["full"], verdicts, judge_model=str(tiny_r1), backend="hf", progress=False)
    (verdict,) = read_jsonl(verdicts)
    assert verdict["judge_config"]["weights"] == trace["model_hash"]


@pytest.mark.parametrize(("backend", "missing", "pip"), [("vllm", "vllm", "tracesafe[vllm]"), ("hf", "transformers", "tracesafe[models]"),
                                                          ("ray", "ray", "tracesafe[ray]")])  # fmt: skip
def test_a_missing_optional_package_names_the_pip_command(tiny_r1, tmp_path, monkeypatch, backend, missing, pip):
    monkeypatch.setitem(sys.modules, missing, None)  # as if not installed: importing it raises ImportError
    cfg = GenerateConfig.from_flat(model=str(tiny_r1), backend=backend, max_tokens=8)
    with pytest.raises(ValueError, match=re.escape(f"the {missing} package is not installed: pip install '{pip}'")):
        generate(cfg, [Prompt(id="p", text="hi")], tmp_path / "t.jsonl", progress=False)
    traces = tmp_path / "traces.jsonl"
    traces.write_text(json.dumps({"id": "t", "prompt": "p", "thinking": "x", "answer": "y"}) + "\n")
    with pytest.raises(ValueError, match=re.escape(f"pip install '{pip}'")):
        run_judges(traces, ["harmbench-cls"], ["answer"], tmp_path / "v.jsonl", judge_model=str(tiny_r1), backend=backend,
                   progress=False)  # fmt: skip


def test_one_vllm_argument_builder_for_generation_and_judges():
    from tracesafe.engines.config import EngineConfig, vllm_engine_args
    from tracesafe.judges.harmbench import HarmBenchJudge

    gen = GenerateConfig.from_flat(model="m", dtype="float32", max_model_len=2048, enforce_eager=True, seed=0, temperature=0.0)
    judge = HarmBenchJudge(model="m", backend="openai", dtype="float32", max_model_len=2048, enforce_eager=True)
    assert gen.engine == judge.engine_spec.config == EngineConfig(dtype="float32", max_model_len=2048, enforce_eager=True)
    args = vllm_engine_args(gen.engine, on_cpu=True, sampled=False)
    assert args["gpu_memory_utilization"] == 0.2 and args["max_model_len"] == 2048 and "enable_chunked_prefill" not in args
    # Seeded sampling on vLLM-CPU cannot chunk a prefill; on a GPU it can, with 0.9 of its memory.
    assert vllm_engine_args(gen.engine, on_cpu=True, sampled=True)["enable_chunked_prefill"] is False
    gpu = vllm_engine_args(EngineConfig(revision="abc", tensor_parallel_size=2), on_cpu=False, sampled=True)
    assert gpu["gpu_memory_utilization"] == 0.9 and gpu["revision"] == "abc" and gpu["tensor_parallel_size"] == 2
    assert "enable_chunked_prefill" not in gpu and "max_model_len" not in gpu


def test_engine_options_reach_transformers_and_a_model_judge(tiny_r1, tmp_path):
    """-E on the hf engine: from_pretrained keyword arguments; a model judge passes its engine_options to its
    engine and records them in its config (so verdicts say how the judge ran)."""
    from tracesafe.engines import EngineConfig
    from tracesafe.engines.registry import get_engine
    from tracesafe.judges import get_judge

    for impl in ("eager", "sdpa"):
        with get_engine("hf", str(tiny_r1), EngineConfig(options={"attn_implementation": impl})) as eng:
            assert eng.model.config._attn_implementation == impl
    judge = get_judge("harmbench-cls", model=str(tiny_r1), backend="hf", engine_options={"attn_implementation": "eager"})
    try:
        assert judge.config()["engine_options"] == {"attn_implementation": "eager"}
        assert judge.engine.model.config._attn_implementation == "eager"
    finally:
        judge.close()
    assert "engine_options" not in get_judge("harmbench-cls", model=str(tiny_r1), backend="hf").config()


def test_the_openai_engine_refuses_engine_options():
    from tracesafe.engines import EngineConfig
    from tracesafe.engines.registry import get_engine

    with pytest.raises(ValueError, match=r"openai engine takes no engine options \(-E max_num_seqs\)"):
        get_engine("openai", "m", EngineConfig(options={"max_num_seqs": 4}), api_base="http://127.0.0.1:9/v1", key_required=False)


def test_judge_cli_engine_options_are_recorded_on_verdicts(tiny_r1, tmp_path):
    import subprocess

    traces = tmp_path / "t.jsonl"
    traces.write_text(json.dumps({"id": "t", "prompt": "q", "raw": "<think>a</think>b"}) + "\n")
    out = tmp_path / "v.jsonl"
    r = subprocess.run([sys.executable, "-m", "tracesafe", "judge", str(traces), "-o", str(out), "-j", "harmbench-cls",
                        "--judge-model", str(tiny_r1), "--backend", "hf", "--segments", "answer",
                        "-E", "attn_implementation=eager"], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr
    (v,) = read_jsonl(out)
    assert v["judge_config"]["engine_options"] == {"attn_implementation": "eager"}
