"""The ray backend (Ray Data + vLLM on CPU, a local Ray instance) gives the same trace ids, texts and finish
reasons as the other backends, greedy, in MoreThink mode: a second round of requests (the answer after the thought,
one more Ray Data pipeline) follows the first, so Ray's follow-up rounds are checked in a real run here rather than
in the engine contract's synthetic one. A stop string and truncation are recovered though Ray drops them, and a file
one backend half-filled is resumed by the other. (The reference is transformers, which test_generate.py checks
token for token against the single-process vllm backend: one vLLM start fewer.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tracesafe.generate import Request
from tracesafe.store import read_jsonl

pytest.importorskip("ray", reason="the ray backend needs `pip install 'ray[data]'` (extra: tracesafe[ray])")

RUN = r"""
import json
import sys
from pathlib import Path
from tracesafe.generate import GenerateConfig, generate
from tracesafe.suites import load_suite

if __name__ == "__main__":
    if sys.argv[2] == "ray":
        import ray

        ray.init(num_cpus=2, object_store_memory=200 * 1024**2, include_dashboard=False, log_to_driver=False)
    ps = load_suite("sst")[:2] + [p for p in load_suite("xstest") if p.label == "benign"][:2]
    cfg = GenerateConfig.from_flat(model=sys.argv[1], backend=sys.argv[2], temperature=0.0, max_tokens=29, samples=2,
                                   thinking_mode="morethink", think_budget=20, think_retries=0,
                                   gpu_memory_utilization=0.2, enforce_eager=True, dtype="float32")
    print("STATS", json.dumps(generate(cfg, ps, Path(sys.argv[3]), progress=False)), flush=True)
"""


def _generate(script: Path, model: Path, backend: str, out: Path) -> dict[str, int]:
    # ~1 min alone; Ray's vLLM slows several-fold when the other test worker holds a core (`pytest -n 2`)
    r = subprocess.run([sys.executable, str(script), str(model), backend, str(out)], capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(next(x for x in r.stdout.splitlines() if x.startswith("STATS ")).removeprefix("STATS "))


@pytest.mark.engine
def test_ray_backend_matches_the_reference_and_resumes_its_file(tiny_r1, tmp_path):
    script = tmp_path / "run.py"
    script.write_text(RUN)
    ref = tmp_path / "hf.jsonl"
    assert _generate(script, tiny_r1, "hf", ref)["generated"] == 8
    ref_recs = {x["id"]: x for x in read_jsonl(ref)}
    # The ray run resumes a file holding the reference run's first samples: it must generate exactly the second ones.
    out = tmp_path / "ray.jsonl"
    out.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in ref_recs.values() if x["sample"] == 0))
    stats = _generate(script, tiny_r1, "ray", out)
    assert stats["already_done"] == 4 and stats["generated"] == 4 and stats["failed"] == 0
    recs = list(read_jsonl(out))
    assert len(recs) == 8 and {x["id"] for x in recs} == ref_recs.keys()
    ray_recs = [x for x in recs if x["backend"] == "ray"]
    assert sorted(x["sample"] for x in ray_recs) == [1, 1, 1, 1]
    for x in ray_recs:
        y = ref_recs[x["id"]]
        for field in ("raw", "thinking", "answer", "split_status", "finish_reason", "prompt_rendered", "params",
                      "sample_seed", "n_tokens", "model_hash"):  # fmt: skip
            assert x[field] == y[field], (field, x[field], y[field])
        assert x["engine"]["name"] == "ray" and x["engine"]["ray"]
    # The thought stops at "</think>" (17 and 12 of its 20 tokens); the 9 answer tokens left hold the harmful
    # prompts' refusal (7 tokens and EOS) and cut the benign ones' longer answer.
    assert all(x["raw"].count("</think>") == 1 and x["split_status"] == "complete" for x in ray_recs)
    assert {x["finish_reason"] for x in ray_recs if x["label"] == "harmful"} == {"stop"}
    assert {x["finish_reason"] for x in ray_recs if x["label"] == "benign"} == {"length"}
    assert Path(str(out).replace(".jsonl", ".manifest.json")).exists()


def test_finish_reason_recovered_from_tokens(tiny_r1):
    """What Ray drops, rebuilt from the generated token ids alone (a tokenizer, no engine)."""
    from tracesafe.engines import EngineConfig, get_engine

    b = get_engine("ray", str(tiny_r1), EngineConfig(), cpu_only=True)
    enc = lambda s: b.tokenizer.encode(s, add_special_tokens=False)  # noqa: E731
    plain, think = Request("", 10), Request("", 10, stop=["</think>"])
    words = enc("I should not help with this")
    eos = b.tokenizer.eos_token_id
    assert b._finish(plain, words, len(words)) == ("length", None)  # the whole budget, no EOS
    assert b._finish(plain, words + [eos], len(words) + 1) == ("stop", eos)  # EOS as the last allowed token
    assert b._finish(plain, words, len(words) + 5) == ("stop", None)  # ended early on another stop token
    closed = enc("I should not help. </think>")
    assert b._finish(think, closed, len(closed)) == ("stop", "</think>")  # stop string at the budget
    assert b._finish(think, words, len(words)) == ("length", None)
