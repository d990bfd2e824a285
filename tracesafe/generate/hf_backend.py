"""transformers `generate`, batched with left padding. Slower than vLLM; for models vLLM cannot load and
for checking vLLM's outputs. Samples of one batch share a torch seed (transformers has no per-sequence
seed), so sampled traces are reproducible for the same batch composition; greedy ones always are."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..engines.packages import require
from .core import Completion, GenerateConfig, Request


class HFBackend:
    name = "hf"

    def __init__(self, cfg: GenerateConfig):
        torch = require("torch")
        require("transformers")
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.cfg = cfg
        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(cfg.model, revision=cfg.revision, trust_remote_code=cfg.trust_remote_code)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        dtype = "auto" if cfg.dtype == "auto" else getattr(torch, cfg.dtype)
        self.model = AutoModelForCausalLM.from_pretrained(cfg.model, revision=cfg.revision, dtype=dtype,
                                                          trust_remote_code=cfg.trust_remote_code)  # fmt: skip
        self.model.eval()
        self.context = cfg.max_model_len or getattr(self.model.config, "max_position_embeddings", 4096)

    def render(self, msgs, chat_template_kwargs) -> str:
        return self.tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True, **chat_template_kwargs)

    def count(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def info(self) -> dict[str, Any]:
        import transformers

        return {"name": self.name, "transformers": transformers.__version__, "torch": self.torch.__version__}

    def _batch(self, reqs: list[Request]) -> list[Completion]:
        torch, tok, cfg = self.torch, self.tokenizer, self.cfg
        enc = tok([r.prompt for r in reqs], return_tensors="pt", padding=True, add_special_tokens=False)
        width = enc["input_ids"].shape[1]
        budgets = [self.context - width if r.max_tokens is None else min(r.max_tokens, self.context - width) for r in reqs]
        greedy = cfg.temperature == 0
        torch.manual_seed(reqs[0].job.seed + reqs[0].job.retries)
        with torch.no_grad():
            out = self.model.generate(
                **enc,
                max_new_tokens=max(1, max(budgets)),
                do_sample=not greedy,
                temperature=None if greedy else cfg.temperature,
                top_p=None if greedy else cfg.top_p,
                top_k=None if greedy or cfg.top_k < 0 else cfg.top_k,
                stop_strings=reqs[0].stop,
                tokenizer=tok if reqs[0].stop else None,
                pad_token_id=tok.pad_token_id,
            )
        eos = self.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos])
        results = []
        for r, row, budget in zip(reqs, out[:, width:].tolist(), budgets):
            # Cut at this row's own end: EOS, its budget, or the padding after it.
            ids, finish, n = [], "length", 0
            for t in row[:budget]:
                n += 1  # EOS counts as generated, as in vLLM's token_ids
                if t in eos_ids:
                    finish = "stop"
                    break
                ids.append(t)
            text = tok.decode(ids, skip_special_tokens=False)
            for s in r.stop or []:
                if s in text:
                    text, finish = text[: text.index(s)], "stop"
                    n = len(tok.encode(text + s, add_special_tokens=False))
            results.append(Completion(text, n, finish))
        return results

    def run(self, requests: list[Request], on_done: Callable[[Request, Completion], list[Request]]) -> None:
        queue = list(requests)
        while queue:
            # One stop list per batch: generate takes one for the whole batch.
            head = queue[0].stop
            batch = [r for r in queue if r.stop == head][: self.cfg.batch_size]
            ids = {id(r) for r in batch}
            queue = [r for r in queue if id(r) not in ids]
            for req, done in zip(batch, self._batch(batch)):
                queue.extend(on_done(req, done))
