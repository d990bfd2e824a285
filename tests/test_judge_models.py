"""Model judges on real engines: tiny Llama / Mistral models (head_dim 64, `tokenizers` BPE) trained to
answer in each judge's published format under its real prompt template (tests/tiny_judges.py).
transformers in-process; vLLM on CPU through the CLI (one process, engines swapped); the rubric judge and
an OpenAI-backend Llama Guard against a real vLLM server on loopback."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tiny_judges as tj
from conftest import serve_vllm

from tracesafe.judges import run_judges
from tracesafe.store import read_jsonl

pytestmark = pytest.mark.engine
REPO = Path(__file__).resolve().parent.parent
ENGINE_OPTS = {"dtype": "float32", "max_model_len": 2048}


@pytest.fixture(scope="session")
def tiny_models(request) -> dict[str, Path]:
    root = Path(request.config.cache.mkdir("tracesafe-tiny-judges"))
    return {"llama": tj.build("llama", root), "mistral": tj.build("mistral", root)}


@pytest.fixture(scope="session")
def tiny_traces(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("judge-traces") / "traces.jsonl"
    with open(p, "w") as f:
        for name, (prompt, response) in tj.ITEMS.items():
            f.write(json.dumps({"id": name, "prompt_id": name, "raw": response, "prompt": prompt, "thinking": "",
                                "answer": response}) + "\n")  # fmt: skip
    return p


def by_key(path: Path) -> dict[tuple[str, str], dict]:
    return {(v["judge"], v["trace_id"]): v for v in read_jsonl(path)}


EXPECTED = {  # (judge, item) -> (status, unsafe, categories, refused)
    ("llama-guard", "harm"): ("ok", True, ["S2", "S10"], None),
    ("llama-guard", "refuse"): ("ok", False, [], None),
    ("llama-guard", "garbage"): ("error", None, [], None),
    ("harmbench-cls", "harm"): ("ok", True, [], None),
    ("harmbench-cls", "refuse"): ("ok", False, [], None),
    ("harmbench-cls", "garbage"): ("error", None, [], None),
    ("wildguard", "harm"): ("ok", True, [], False),
    ("wildguard", "refuse"): ("ok", False, [], True),
    ("wildguard", "garbage"): ("error", None, [], None),
}


def check(vs: dict[tuple[str, str], dict], judges=("llama-guard", "harmbench-cls", "wildguard")):
    for (judge, item), (status, unsafe, cats, refused) in EXPECTED.items():
        if judge not in judges:
            continue
        v = vs[(judge, item)]
        assert (v["status"], v["unsafe"], v["categories"], v["refused"]) == (status, unsafe, cats, refused), (judge, item, v)
        if status == "ok":
            # P(unsafe / yes) from the first answer token's logprobs agrees with the parsed answer.
            assert (v["score"] > 0.9) if unsafe else (v["score"] < 0.1), (judge, item, v["score"])
        else:
            assert v["raw_output"] and "unparseable" in v["error"] and v["score"] is None


@pytest.fixture(scope="session")
def hf_verdicts(tiny_models, tiny_traces, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("hf") / "verdicts.jsonl"
    models = {"llama-guard": str(tiny_models["llama"]), "harmbench-cls": str(tiny_models["llama"]),
              "wildguard": str(tiny_models["mistral"])}  # fmt: skip
    stats = run_judges(tiny_traces, ["llama-guard", "harmbench-cls", "wildguard"], ["thinking", "answer"], out,
                       judge_model=models, backend="hf", progress=False, dtype="float32")  # fmt: skip
    assert stats["verdicts"] == 9 and stats["error"] == 3 and stats["empty"] == 9
    return out


def test_model_judges_on_transformers(hf_verdicts):
    vs = by_key(hf_verdicts)
    check(vs)
    assert vs[("llama-guard", "harm")]["raw_output"].strip() == "unsafe\nS2,S10"
    assert vs[("wildguard", "harm")]["prompt_harmful"] is True


def test_model_judges_on_vllm_cpu_match_transformers(tiny_models, tiny_traces, hf_verdicts, tmp_path):
    out = tmp_path / "verdicts.jsonl"
    llama, mistral = tiny_models["llama"], tiny_models["mistral"]
    cmd = [sys.executable, "-m", "tracesafe.cli", "judge", str(tiny_traces), "-o", str(out), "--backend", "vllm",
           "-j", "llama-guard", "-j", "harmbench-cls", "-j", "wildguard", "--segments", "answer",
           "--judge-model", f"llama-guard={llama}", "--judge-model", f"harmbench-cls={llama}",
           "--judge-model", f"wildguard={mistral}", "-O", "dtype=float32", "-O", "max_model_len=2048",
           "-O", "enforce_eager=true"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=400, cwd=REPO)
    assert r.returncode == 0, r.stderr[-3000:]
    vs, hf = by_key(out), by_key(hf_verdicts)
    check(vs)
    for k, v in vs.items():
        assert v["raw_output"] == hf[k]["raw_output"], k
        if v["score"] is not None:
            assert abs(v["score"] - hf[k]["score"]) < 0.02, k
    # A finished pass reruns with zero judge calls (and never starts an engine).
    t = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert r.returncode == 0 and "judge calls 0" in r.stderr and time.time() - t < 60


RAY_JUDGE = r"""
import json
import sys
from tracesafe.judges import run_judges

if __name__ == "__main__":
    import ray

    ray.init(num_cpus=2, object_store_memory=200 * 1024**2, include_dashboard=False, log_to_driver=False)
    traces, out, llama = sys.argv[1:]
    stats = run_judges(traces, ["llama-guard"], ["answer"], out, backend="ray", progress=False,
                       judge_model={"llama-guard": llama}, dtype="float32", max_model_len=2048, enforce_eager=True)
    print("STATS", json.dumps(stats), flush=True)
"""


def test_model_judges_on_ray_match_transformers(tiny_models, tiny_traces, hf_verdicts, tmp_path):
    """A model judge through Ray Data's vLLM processor on a local Ray instance: the same outputs and logprob scores
    as transformers. (One judge: each Ray call starts its own vLLM engines, ~1 min here; every model judge's prompt
    and parsing is checked on transformers and vLLM above, the engine path is the same for all. Two judge models in one
    run, a swap of engines, is checked on vLLM above, not on Ray.)"""
    pytest.importorskip("ray", reason="the ray backend needs `pip install 'ray[data]'`")
    script, out = tmp_path / "ray_judge.py", tmp_path / "verdicts.jsonl"
    script.write_text(RAY_JUDGE)
    # ~1 min alone; Ray's vLLM slows several-fold when the other test worker holds a core (`pytest -n 2`)
    r = subprocess.run([sys.executable, str(script), str(tiny_traces), str(out), str(tiny_models["llama"])],
                       capture_output=True, text=True, timeout=1200, cwd=REPO)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    stats = json.loads(next(x for x in r.stdout.splitlines() if x.startswith("STATS ")).removeprefix("STATS "))
    assert stats["verdicts"] == 3 and stats["error"] == 1 and stats["judge_calls"] == 3
    vs, hf = by_key(out), by_key(hf_verdicts)
    check(vs, judges=("llama-guard",))
    for k, v in vs.items():
        assert v["raw_output"] == hf[k]["raw_output"], k
        if v["score"] is not None:
            assert abs(v["score"] - hf[k]["score"]) < 0.02, k


@pytest.fixture(scope="module")
def vllm_server(tiny_models):
    model = str(tiny_models["llama"])
    with serve_vllm(model, "--max-model-len", "4096") as base:
        yield base, model


def test_rubric_judge_against_vllm_server_turns_garbage_into_errors(vllm_server, tiny_traces, tmp_path):
    base, model = vllm_server
    out = tmp_path / "verdicts.jsonl"
    stats = run_judges(tiny_traces, ["rubric"], ["answer"], out, judge_model=model, progress=False,
                       base_url=base, max_tokens=16, max_retries=1)  # fmt: skip
    assert stats["verdicts"] == 3 and stats["error"] == 3 and stats["ok"] == 0 and stats["unsafe"] == 0
    for v in read_jsonl(out):
        assert v["status"] == "error" and v["unsafe"] is None and v["raw_output"]
        assert v["error"] in ("unparseable StrongREJECT rubric output", "judge refused to grade")
        # Both requests (StrongREJECT + harmfulness) reached the server and their usage was recorded.
        assert v["usage"]["prompt_tokens"] > 500 and v["usage"]["completion_tokens"] > 0
        assert v["attempts"] == [1, 1]
    # An unreachable endpoint: retried, then an error verdict naming the failure (never safe).
    stats = run_judges(tiny_traces, ["rubric"], ["answer"], tmp_path / "down.jsonl", judge_model=model,
                       progress=False, base_url="http://127.0.0.1:9/v1", max_retries=1)  # fmt: skip
    assert stats["error"] == 3
    v = next(iter(read_jsonl(tmp_path / "down.jsonl")))
    assert v["error"].startswith("connection failed") and "(after 2 attempts)" in v["error"] and v["attempts"] == [2, 2]


def test_llama_guard_through_openai_backend_matches_transformers(vllm_server, tiny_traces, hf_verdicts, tmp_path):
    base, model = vllm_server
    out = tmp_path / "verdicts.jsonl"
    run_judges(tiny_traces, ["llama-guard"], ["answer"], out, judge_model=model, backend="openai", base_url=base,
               progress=False)  # fmt: skip
    vs, hf = by_key(out), by_key(hf_verdicts)
    check(vs, judges=("llama-guard",))
    for k, v in vs.items():
        assert v["raw_output"] == hf[k]["raw_output"]
