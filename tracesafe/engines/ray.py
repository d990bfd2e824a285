"""Many nodes: vLLM replicas through Ray Data's LLM batch processor (``ray.data.llm``).

Prompts are rendered and tokenized here, as for the other engines, so trace ids, rendered prompts and
records are identical; Ray runs ``data_parallel_size`` vLLM replicas (each with the configured tensor and
pipeline parallelism) over the rows and streams results back, so the caller writes each result as it
arrives. Each call over a dataset is one Ray job, which starts its engines: few, large calls.

Ray's vLLM stage (checked in ray 2.60: ``vLLMOutputData.from_vllm_engine_output``) keeps only ``outputs[0]``
and drops ``finish_reason``. So one row is submitted per sample with its own seed (n=1), and the finish
reason is recovered from the token ids (``_finish``): a generation that filled its whole budget without
ending on EOS or a stop string was cut (``length``). Follow-up requests (MoreThink) run as further rounds,
each a Ray job.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from .base import BaseEngine, Completion, OnDone, Request
from .config import EngineConfig, vllm_engine_args
from .packages import require
from .registry import register_engine


def cluster_is_cpu_only() -> bool:
    """Whether the Ray cluster (started here if none is running) has no GPU; the driver may have none."""
    import ray

    if not ray.is_initialized():  # a local instance when no cluster is running (or RAY_ADDRESS names one)
        ray.init(ignore_reinit_error=True, log_to_driver=False)
    return not ray.cluster_resources().get("GPU")


def vllm_processor(model: str, engine_kwargs: dict[str, Any], *, replicas: int, batch_size: int, cpu_only: bool):
    """A Ray Data processor running ``replicas`` vLLM engines over rows that carry ``tokenized_prompt`` and
    ``sampling_params``."""
    from ray.data.llm import build_processor, vLLMEngineProcessorConfig

    extra: dict[str, Any] = {}
    if cpu_only:  # no GPU bundles: each replica asks for CPUs only
        extra["placement_group_config"] = {"bundle_per_worker": {"CPU": 1}}
    config = vLLMEngineProcessorConfig(
        model_source=model,
        engine_kwargs=engine_kwargs,
        concurrency=replicas,
        batch_size=batch_size,
        chat_template_stage=False,  # rendered by tracesafe, so prompt_rendered is exact
        tokenize_stage=False,  # tokenized by tracesafe: the template already holds BOS
        detokenize_stage=False,  # vLLM's own text, with the row's skip_special_tokens
        log_engine_metrics=False,  # vLLM's Ray metrics import fails on CPU builds; not needed here
        **extra,
    )
    return build_processor(config, postprocess=lambda row: row)


@register_engine("ray")
class RayEngine(BaseEngine):
    """``sampled``: requests will sample with per-request seeds; ``cpu_only``: None decides from the
    cluster's resources (the driver may have no GPU)."""

    judge_batch_size = 4096

    def __init__(self, model: str, config: EngineConfig, *, sampled: bool = False, batch_size: int = 64,
                 cpu_only: bool | None = None, top_logprobs: int = 20):  # fmt: skip
        require("ray")
        require("vllm")
        require("transformers")
        from transformers import AutoConfig, AutoTokenizer

        self.model, self.config, self.sampled = model, config, sampled
        self.batch_size, self.cpu_only, self.top_logprobs = batch_size, cpu_only, top_logprobs
        self.tokenizer = AutoTokenizer.from_pretrained(model, revision=config.revision, trust_remote_code=config.trust_remote_code)
        model_cfg = AutoConfig.from_pretrained(model, revision=config.revision, trust_remote_code=config.trust_remote_code)
        self.max_model_len = config.max_model_len or getattr(model_cfg, "max_position_embeddings", 4096)
        self.eos_ids = self._eos_ids(model_cfg) | {self.tokenizer.eos_token_id}
        self._processor = None

    def _eos_ids(self, model_cfg: Any) -> set[int]:
        """The tokens vLLM stops on: the model config's EOS and generation_config.json's (vLLM adds the latter)."""
        from transformers import GenerationConfig

        ids = [getattr(model_cfg, "eos_token_id", None)]
        try:
            ids.append(GenerationConfig.from_pretrained(self.model, revision=self.config.revision).eos_token_id)
        except OSError:  # no generation_config.json
            pass
        return {i for x in ids for i in (x if isinstance(x, list) else [x]) if i is not None}

    def info(self) -> dict[str, Any]:
        import ray
        import vllm

        return {"name": self.name, "ray": ray.__version__, "vllm": vllm.__version__, "replicas": self.config.data_parallel_size}

    def close(self) -> None:
        self._processor = None
        super().close()

    def processor(self):
        """The Ray Data processor, built on first use (it starts Ray when no cluster is running)."""
        if self._processor is None:
            if self.cpu_only is None:
                self.cpu_only = cluster_is_cpu_only()
            engine_cfg = replace(self.config, max_model_len=self.max_model_len)
            engine_kwargs = vllm_engine_args(engine_cfg, on_cpu=self.cpu_only, sampled=self.sampled)
            self._processor = vllm_processor(self.model, engine_kwargs, replicas=self.config.data_parallel_size,
                                             batch_size=self.batch_size, cpu_only=self.cpu_only)  # fmt: skip
        return self._processor

    def _row(self, key: int, req: Request, ids: list[int]) -> dict[str, Any]:
        room = self.max_model_len - len(ids)
        budget = max(1, room if req.max_tokens is None else min(req.max_tokens, room))
        sp: dict[str, Any] = dict(n=1, temperature=req.temperature, top_p=req.top_p, top_k=req.top_k, max_tokens=budget,
                                  seed=req.seed, skip_special_tokens=False, spaces_between_special_tokens=False)  # fmt: skip
        if req.stop:
            sp["stop"] = req.stop
        return {"key": key, "prompt": req.prompt, "tokenized_prompt": ids, "sampling_params": sp}

    def run(self, requests: list[Request], on_done: OnDone) -> int:
        import ray

        if not ray.is_initialized():  # a local instance when no cluster is running (or RAY_ADDRESS names one)
            ray.init(ignore_reinit_error=True, log_to_driver=False)
        processor = self.processor()
        while requests:
            encoded: dict[str, list[int]] = {}  # the samples of a prompt share its text: encode it once
            rows = []
            for i, req in enumerate(requests):
                if req.prompt not in encoded:
                    encoded[req.prompt] = self.tokenizer.encode(req.prompt, add_special_tokens=False)  # the template has BOS
                rows.append(self._row(i, req, encoded[req.prompt]))
            del encoded
            budgets = [r["sampling_params"]["max_tokens"] for r in rows]
            follow: list[Request] = []
            for out in processor(ray.data.from_items(rows)).iter_rows():
                i = int(out["key"])
                req, tokens = requests[i], list(out["generated_tokens"])
                finish, stop_reason = self._finish(req, tokens, budgets[i])
                done = Completion(out["generated_text"], len(tokens), finish, stop_reason, n_prompt=int(out["num_input_tokens"]))
                follow += on_done(req, done)
            requests = follow
        return 0

    def _finish(self, req: Request, tokens: list[int], budget: int) -> tuple[str, str | int | None]:
        """vLLM's finish_reason and stop_reason, which Ray drops. Ending on EOS, or on a stop string (vLLM
        ends on the first match and cuts it from the text, so one found in the decoded tokens is the one it
        stopped on), is "stop" even at the budget; otherwise a generation that filled its budget was cut
        ("length") and a shorter one stopped on another stop token (e.g. from generation_config)."""
        last = tokens[-1] if tokens else None
        if last in self.eos_ids:
            return "stop", last
        if req.stop:
            full = self.tokenizer.decode(tokens, skip_special_tokens=False)
            hit = next((s for s in req.stop if s in full), None)
            if hit is not None:
                return "stop", hit
        return ("length" if len(tokens) >= budget else "stop"), None

    def _greedy_ids(self, ids: list[list[int]], max_tokens: int) -> list[Completion]:
        """One Ray job over all prompts: the same greedy request as the vllm engine's, as rows. Ray keeps
        vLLM's per-token logprobs as {token id: {logprob, rank, decoded_token}}."""
        import ray

        processor = self.processor()
        sp = {"temperature": 0.0, "max_tokens": max_tokens, "logprobs": self.top_logprobs, "seed": 0}
        rows = [{"key": i, "tokenized_prompt": s, "sampling_params": sp} for i, s in enumerate(ids)]
        out = [Completion(error="Ray returned no output for this prompt") for _ in ids]
        for row in processor(ray.data.from_items(rows)).iter_rows():
            steps = [{int(t): (d["logprob"], d.get("decoded_token")) for t, d in step.items() if d is not None}
                     for step in row.get("logprobs") or []]  # fmt: skip
            out[int(row["key"])] = self._vllm_completion(row["generated_text"], list(row["generated_tokens"]), steps)
        return out
