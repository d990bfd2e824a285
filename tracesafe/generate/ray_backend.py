"""Many nodes: the same generation through Ray Data's LLM batch processor (`ray.data.llm` with vLLM).

Prompts are rendered and tokenized here, as for the other backends, so trace ids, rendered prompts and
records are identical; Ray runs `data_parallel_size` vLLM replicas (each with the configured tensor and
pipeline parallelism) over the rows and streams results back, and `generate` writes each trace as it
arrives, so resume by id works across nodes as everywhere else.

Ray's vLLM stage (checked in ray 2.60: `vLLMOutputData.from_vllm_engine_output`) keeps only `outputs[0]`
and drops `finish_reason`. So one row is submitted per sample with its own seed (n=1), and the finish
reason is recovered from the token ids (`_finish`): a generation that filled its whole budget without
ending on EOS or a stop string was cut (`length`). MoreThink continuations run as further rounds, each a
Ray job.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ..engines.config import vllm_engine_args
from ..engines.packages import require
from .core import Completion, GenerateConfig, Request


def _eos_ids(cfg: GenerateConfig, model_cfg: Any) -> set[int]:
    """The tokens vLLM stops on: the model config's EOS and generation_config.json's (vLLM adds the latter)."""
    from transformers import GenerationConfig

    ids = [getattr(model_cfg, "eos_token_id", None)]
    try:
        ids.append(GenerationConfig.from_pretrained(cfg.model, revision=cfg.revision).eos_token_id)
    except OSError:  # no generation_config.json
        pass
    return {i for x in ids for i in (x if isinstance(x, list) else [x]) if i is not None}


def cluster_is_cpu_only() -> bool:
    """Whether the Ray cluster (started here if none is running) has no GPU; the driver may have none."""
    import ray

    if not ray.is_initialized():
        ray.init(ignore_reinit_error=True, log_to_driver=False)
    return not ray.cluster_resources().get("GPU")


def vllm_processor(model: str, engine_kwargs: dict[str, Any], *, replicas: int, batch_size: int, cpu_only: bool):
    """A Ray Data processor running ``replicas`` vLLM engines over rows that carry ``tokenized_prompt`` and
    ``sampling_params``; the judges' ray backend uses it too. Each call on a dataset is one Ray job, which
    starts its engines."""
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


class RayBackend:
    name = "ray"

    def __init__(self, cfg: GenerateConfig, *, batch_size: int = 64, cpu_only: bool | None = None):
        require("ray")
        require("vllm")
        require("transformers")
        from transformers import AutoConfig, AutoTokenizer

        self.cfg = cfg
        self.batch_size = batch_size
        self.tokenizer = AutoTokenizer.from_pretrained(cfg.model, revision=cfg.revision, trust_remote_code=cfg.trust_remote_code)
        model_cfg = AutoConfig.from_pretrained(cfg.model, revision=cfg.revision, trust_remote_code=cfg.trust_remote_code)
        self.max_model_len = cfg.max_model_len or getattr(model_cfg, "max_position_embeddings", 4096)
        self.eos_ids = _eos_ids(cfg, model_cfg) | {self.tokenizer.eos_token_id}
        self.cpu_only = cpu_only  # None: decided from the cluster's resources (the driver may have no GPU)

    def render(self, msgs, chat_template_kwargs) -> str:
        return self.tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True, **chat_template_kwargs)

    def count(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def info(self) -> dict[str, Any]:
        import ray
        import vllm

        return {"name": self.name, "ray": ray.__version__, "vllm": vllm.__version__, "replicas": self.cfg.data_parallel_size}

    def _processor(self):
        if self.cpu_only is None:
            self.cpu_only = cluster_is_cpu_only()
        engine_cfg = replace(self.cfg.engine_config(), max_model_len=self.max_model_len)
        engine_kwargs = vllm_engine_args(engine_cfg, on_cpu=self.cpu_only, sampled=self.cfg.temperature > 0)
        return vllm_processor(self.cfg.model, engine_kwargs, replicas=self.cfg.data_parallel_size,
                              batch_size=self.batch_size, cpu_only=self.cpu_only)  # fmt: skip

    def _row(self, key: int, req: Request, ids: list[int]) -> dict[str, Any]:
        room = self.max_model_len - len(ids)
        budget = max(1, room if req.max_tokens is None else min(req.max_tokens, room))
        sp: dict[str, Any] = dict(n=1, temperature=self.cfg.temperature, top_p=self.cfg.top_p, top_k=self.cfg.top_k,
                                  max_tokens=budget, seed=req.job.seed + req.job.retries, skip_special_tokens=False,
                                  spaces_between_special_tokens=False)  # fmt: skip
        if req.stop:
            sp["stop"] = req.stop
        return {"key": key, "prompt": req.prompt, "tokenized_prompt": ids, "sampling_params": sp}

    def run(self, requests: list[Request], on_done: Callable[[Request, Completion], list[Request]]) -> None:
        import ray

        if not ray.is_initialized():  # a local instance when no cluster is running (or RAY_ADDRESS names one)
            ray.init(ignore_reinit_error=True, log_to_driver=False)
        processor = self._processor()
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
