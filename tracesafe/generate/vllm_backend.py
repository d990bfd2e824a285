"""Offline vLLM (`vllm.LLM`): every request is queued at once so vLLM's scheduler batches them, and each
finished request is handed back as soon as the engine reports it (continuous batching, no waiting for the
slowest sequence of a chunk)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..engines.config import vllm_engine_args, vllm_on_cpu
from ..engines.packages import require
from .core import Completion, GenerateConfig, Request


class VLLMBackend:
    name = "vllm"

    def __init__(self, cfg: GenerateConfig, **engine_kwargs: Any):
        require("vllm")
        from vllm import LLM

        self.cfg = cfg
        kwargs: dict[str, Any] = dict(model=cfg.model, **vllm_engine_args(cfg.engine_config(), on_cpu=vllm_on_cpu(),
                                                                          sampled=cfg.temperature > 0))  # fmt: skip
        if cfg.data_parallel_size > 1:
            kwargs["data_parallel_size"] = cfg.data_parallel_size
        kwargs.update(engine_kwargs)
        self.llm = LLM(**kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        self.max_model_len = self.llm.llm_engine.model_config.max_model_len

    def render(self, msgs, chat_template_kwargs) -> str:
        return self.tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True, **chat_template_kwargs)

    def count(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def info(self) -> dict[str, Any]:
        import vllm

        return {"name": self.name, "vllm": vllm.__version__, "max_model_len": self.max_model_len}

    def sampling_params(self, req: Request, n_prompt: int):
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        cfg = self.cfg
        room = self.max_model_len - n_prompt
        max_tokens = room if req.max_tokens is None else min(req.max_tokens, room)
        # Every parameter explicit: vLLM's own defaults (max_tokens 16, temperature 1.0) must never apply.
        return SamplingParams(
            n=1,
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            top_k=cfg.top_k,
            max_tokens=max(1, max_tokens),
            seed=req.job.seed + req.job.retries,
            stop=req.stop,
            skip_special_tokens=False,  # keep gpt-oss harmony channel markers, so analysis/final are separable
            spaces_between_special_tokens=False,
            # As LLM.generate/chat do: no per-step partial outputs (building them costs ~20% on a fast engine).
            output_kind=RequestOutputKind.FINAL_ONLY,
        )

    def run(self, requests: list[Request], on_done: Callable[[Request, Completion], list[Request]]) -> None:
        engine = self.llm.llm_engine
        pending: dict[str, Request] = {}
        counter = iter(range(1 << 62))

        def add(req: Request, ids: list[int] | None = None) -> None:
            if ids is None:
                ids = self.tokenizer.encode(req.prompt, add_special_tokens=False)  # the template already has BOS
            rid = f"{req.job.id}-{next(counter)}"  # outputs carry the id given here
            engine.add_request(rid, {"prompt_token_ids": ids}, self.sampling_params(req, len(ids)))
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
