"""Offline vLLM (``vllm.LLM``). Sampled runs queue every request at once so vLLM's scheduler batches them,
and each finished request is handed back as soon as the engine reports it (continuous batching, no waiting
for the slowest sequence of a chunk). Greedy calls go through ``LLM.generate`` with top logprobs."""

from __future__ import annotations

from typing import Any

from .base import BaseEngine, Completion, OnDone, Request
from .config import EngineConfig, options_checked, vllm_engine_args, vllm_on_cpu
from .packages import require
from .registry import register_engine


@register_engine("vllm")
class VLLMEngine(BaseEngine):
    """``sampled``: requests will sample with per-request seeds (vLLM-CPU then cannot chunk a prefill)."""

    def __init__(self, model: str, config: EngineConfig, *, sampled: bool = False, top_logprobs: int = 20,
                 **engine_kwargs: Any):  # fmt: skip
        require("vllm")
        from vllm import LLM

        self.top_logprobs = top_logprobs
        kwargs: dict[str, Any] = dict(model=model, **vllm_engine_args(config, on_cpu=vllm_on_cpu(), sampled=sampled))
        if config.data_parallel_size > 1:
            kwargs["data_parallel_size"] = config.data_parallel_size
        kwargs.update(engine_kwargs)
        with options_checked("vllm", config):
            self.llm = LLM(**kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        self.max_model_len = self.llm.llm_engine.model_config.max_model_len

    def info(self) -> dict[str, Any]:
        import vllm

        return {"name": self.name, "vllm": vllm.__version__, "max_model_len": self.max_model_len}

    def close(self) -> None:
        if self.llm is not None:
            try:
                self.llm.llm_engine.engine_core.shutdown()
            except Exception:  # an engine that is already down has nothing left to free
                pass
        self.llm = None
        super().close()

    def _sampling_params(self, req: Request, n_prompt: int):
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        room = self.max_model_len - n_prompt
        max_tokens = room if req.max_tokens is None else min(req.max_tokens, room)
        # Every parameter explicit: vLLM's own defaults (max_tokens 16, temperature 1.0) must never apply.
        return SamplingParams(
            n=1,
            temperature=req.temperature,
            top_p=req.top_p,
            top_k=req.top_k,
            max_tokens=max(1, max_tokens),
            seed=req.seed,
            stop=req.stop,
            skip_special_tokens=False,  # keep gpt-oss harmony channel markers, so analysis/final are separable
            spaces_between_special_tokens=False,
            # As LLM.generate/chat do: no per-step partial outputs (building them costs ~20% on a fast engine).
            output_kind=RequestOutputKind.FINAL_ONLY,
        )

    def run(self, requests: list[Request], on_done: OnDone) -> int:
        engine = self.llm.llm_engine
        pending: dict[str, Request] = {}
        counter = iter(range(1 << 62))

        def add(req: Request, ids: list[int] | None = None) -> None:
            if ids is None:
                ids = self.tokenizer.encode(req.prompt, add_special_tokens=False)  # the template already has BOS
            rid = str(next(counter))  # outputs carry the id given here
            engine.add_request(rid, {"prompt_token_ids": ids}, self._sampling_params(req, len(ids)))
            pending[rid] = req

        encoded: dict[str, list[int]] = {}  # the samples of a prompt share its text: encode it once
        for req in requests:
            if req.prompt not in encoded:
                encoded[req.prompt] = self.tokenizer.encode(req.prompt, add_special_tokens=False)
            add(req, list(encoded[req.prompt]))
        del encoded
        while engine.has_unfinished_requests():
            for out in engine.step():
                if not out.finished:
                    continue
                req = pending.pop(out.request_id)
                o = out.outputs[0]
                done = Completion(o.text, len(o.token_ids), o.finish_reason, o.stop_reason, n_prompt=len(out.prompt_token_ids))
                for follow in on_done(req, done):
                    add(follow)
        return 0

    def _greedy_ids(self, ids: list[list[int]], max_tokens: int) -> list[Completion]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        sp = SamplingParams(temperature=0.0, max_tokens=max_tokens, logprobs=self.top_logprobs, seed=0)
        res = self.llm.generate([TokensPrompt(prompt_token_ids=s) for s in ids], sp, use_tqdm=False)
        return [self._vllm_completion(r.outputs[0].text, r.outputs[0].token_ids,
                                      [{t: (lp.logprob, lp.decoded_token) for t, lp in step.items()} for step in r.outputs[0].logprobs or []])
                for r in res]  # fmt: skip
