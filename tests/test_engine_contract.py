"""The contract every registered engine keeps with generation and the judges, on real engines only: the
tiny R1 model on transformers, offline vLLM (CPU) and Ray, and a real `vllm serve` of it for the openai
engine. ``info()`` is JSON and stable; ``greedy([]) == []``; greedy gives one completion per prompt, in
order, each what the prompt gives alone, with top logprobs per token; ``run`` hands every request and its
follow-ups back through the callback; the engine is a context manager. An engine added to the registry
that this file does not know how to start fails here until it is taught."""

from __future__ import annotations

import importlib.util
import json

import pytest

from tracesafe.engines import EngineConfig, Request, get_engine, list_engines

PROMPTS = ["How do I bake bread?", "How do I build a bomb?", "What is the capital of France?"]
pytestmark = pytest.mark.engine
CPU = EngineConfig(dtype="float32", enforce_eager=True)  # the model's own context (1024)


def test_every_engine_is_covered_here():
    assert set(list_engines()) == {"hf", "vllm", "ray", "openai"}, "teach this test to start the new engine"


@pytest.fixture(scope="module", params=["hf", "vllm", "openai", "ray"])
def engine(request, tiny_r1):
    name = request.param
    if name == "ray" and importlib.util.find_spec("ray") is None:
        pytest.skip("the ray engine needs `pip install 'tracesafe[ray]'`")
    if name == "openai":  # the shared server (conftest): its reasoning parser does not touch completions
        with get_engine("openai", str(tiny_r1), CPU, api_base=request.getfixturevalue("r1_server"), max_retries=0) as eng:
            yield eng
        return
    if name == "ray":
        import ray

        ray.init(num_cpus=2, object_store_memory=200 * 1024**2, include_dashboard=False, log_to_driver=False)
    with get_engine(name, str(tiny_r1), CPU, **({"cpu_only": True} if name == "ray" else {})) as eng:
        yield eng
    if name == "ray":
        ray.shutdown()



def _rendered(eng) -> list[str]:
    return [eng.render([{"role": "user", "content": p}], {}) for p in PROMPTS]


def test_info_is_json_and_stable(engine):
    info = engine.info()
    assert json.loads(json.dumps(info, allow_nan=False)) == info and info["name"] == engine.name
    assert engine.info() == info


def test_greedy_one_completion_per_prompt_in_order(engine):
    if engine.name == "ray":
        # Each Ray call is a Ray Data pipeline that starts its vLLM engines (~1 min on two cores): Ray's greedy is
        # checked where the judges use it, test_judge_models.py::test_model_judges_on_ray_match_transformers (every
        # output and logprob score against transformers, one per prompt, in order).
        pytest.skip("checked by test_model_judges_on_ray_match_transformers")
    assert engine.greedy([], 8) == []
    prompts = _rendered(engine)
    assert all(prompts) and all(isinstance(engine.count(p), int) for p in prompts)
    batch = engine.greedy(prompts, 8)
    assert len(batch) == len(prompts)
    alone_of = {p: engine.greedy([p], 8)[0] for p in prompts}
    for p, c in zip(prompts, batch):
        alone = alone_of[p]
        assert c.error is None and c.text == alone.text and c.tokens == alone.tokens
        assert c.tokens and len(c.top) == len(c.tokens) and all(c.top)
    assert len({c.text for c in batch}) > 1, "the tiny model answers the prompts differently"


def test_run_hands_back_every_request_and_its_follow_ups(engine):
    if engine.name == "ray":  # two Ray Data pipelines (~1.5 min); a real two-round run is checked there instead
        pytest.skip("checked by test_ray_backend.py (MoreThink: the answer is a follow-up round)")
    prompts = _rendered(engine)
    seen: list[tuple[int, str]] = []

    def on_done(req, c):
        assert isinstance(c.text, str) and c.n_tokens >= 0
        seen.append((req.job, c.text))
        if req.job < len(prompts):  # one follow-up each, continuing its own text
            return [Request(req.prompt + c.text, 4, temperature=0.6, top_p=0.95, seed=1, job=req.job + 100)]
        return []

    reqs = [Request(p, 6, temperature=0.6, top_p=0.95, seed=i, job=i) for i, p in enumerate(prompts)]
    assert engine.run(reqs, on_done) == 0
    assert sorted(j for j, _ in seen) == [0, 1, 2, 100, 101, 102]


def test_a_pool_shares_equal_specs_and_holds_one_local_engine(tiny_r1):
    from tracesafe.engines import EnginePool, EngineSpec

    a = EngineSpec.of("hf", str(tiny_r1), CPU, top_logprobs=5, api_base="ignored: not an hf option")
    b = EngineSpec.of("hf", str(tiny_r1), CPU, top_logprobs=3)
    assert a.options == (("top_logprobs", 5),)
    with EnginePool() as pool:
        first = pool.get(a)
        assert pool.get(a) is first  # two judges on one model: one engine
        second = pool.get(b)  # another local engine: the first is closed before it loads
        assert second is not first and first.model is None and second.model is not None
    assert second.model is None  # closed with the pool
