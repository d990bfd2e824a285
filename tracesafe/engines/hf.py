"""transformers ``generate``. Slower than vLLM; for models vLLM cannot load and for checking vLLM's outputs.

Sampled runs are batched with left padding. Samples of one batch share a torch seed (transformers has no
per-sequence seed), so sampled traces are reproducible for the same batch composition; greedy ones always
are. Greedy decoding with logprobs (judges) runs one prompt at a time: no padding effects, identical to
unbatched published usage."""

from __future__ import annotations

from typing import Any

from .base import BaseEngine, Completion, OnDone, Request
from .config import EngineConfig, options_checked
from .packages import require
from .registry import register_engine


@register_engine("hf")
class HFEngine(BaseEngine):
    def __init__(self, model: str, config: EngineConfig, *, batch_size: int = 16, top_logprobs: int = 20):
        torch = require("torch")
        require("transformers")
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.batch_size, self.top_logprobs = batch_size, top_logprobs
        self.tokenizer = AutoTokenizer.from_pretrained(model, revision=config.revision, trust_remote_code=config.trust_remote_code)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        dtype = "auto" if config.dtype == "auto" else getattr(torch, config.dtype)
        # -E options are from_pretrained keyword arguments (e.g. attn_implementation=eager), applied last.
        with options_checked("hf", config):
            self.model = AutoModelForCausalLM.from_pretrained(model, **{"revision": config.revision, "dtype": dtype,
                                                              "trust_remote_code": config.trust_remote_code, **config.options})  # fmt: skip
        self.model.eval()
        if torch.cuda.is_available():
            self.model.to("cuda")
        self.max_model_len = config.max_model_len or getattr(self.model.config, "max_position_embeddings", 4096)
        eos = self.model.generation_config.eos_token_id
        self.eos_ids = set(_as_list(eos) or _as_list(self.tokenizer.eos_token_id))

    def info(self) -> dict[str, Any]:
        import transformers

        return {"name": self.name, "transformers": transformers.__version__, "torch": self.torch.__version__}

    def close(self) -> None:
        self.model = None
        super().close()

    def _batch(self, reqs: list[Request]) -> list[Completion]:
        torch, tok, first = self.torch, self.tokenizer, reqs[0]
        enc = tok([r.prompt for r in reqs], return_tensors="pt", padding=True, add_special_tokens=False).to(self.model.device)
        width = enc["input_ids"].shape[1]
        room = self.max_model_len - width
        budgets = [room if r.max_tokens is None else min(r.max_tokens, room) for r in reqs]
        greedy = first.temperature == 0
        torch.manual_seed(first.seed)
        with torch.no_grad():
            out = self.model.generate(
                **enc,
                max_new_tokens=max(1, max(budgets)),
                do_sample=not greedy,
                temperature=None if greedy else first.temperature,
                top_p=None if greedy else first.top_p,
                top_k=None if greedy or first.top_k < 0 else first.top_k,
                stop_strings=first.stop,
                tokenizer=tok if first.stop else None,
                pad_token_id=tok.pad_token_id,
            )
        results = []
        for r, row, budget in zip(reqs, out[:, width:].tolist(), budgets):
            # Cut at this row's own end: EOS, its budget, or the padding after it.
            ids, finish, n = [], "length", 0
            for t in row[:budget]:
                n += 1  # EOS counts as generated, as in vLLM's token_ids
                if t in self.eos_ids:
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

    def run(self, requests: list[Request], on_done: OnDone) -> int:
        queue = list(requests)
        while queue:
            # One stop list and sampling per batch: generate takes one for the whole batch.
            head = _batch_key(queue[0])
            batch = [r for r in queue if _batch_key(r) == head][: self.batch_size]
            ids = {id(r) for r in batch}
            queue = [r for r in queue if id(r) not in ids]
            for req, done in zip(batch, self._batch(batch)):
                queue.extend(on_done(req, done))
        return 0

    def _greedy_ids(self, ids: list[list[int]], max_tokens: int) -> list[Completion]:
        torch, tok, model = self.torch, self.tokenizer, self.model
        out = []
        for seq in ids:
            x = torch.tensor([seq], device=model.device)
            with torch.inference_mode():
                o = model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=max_tokens, do_sample=False,
                                   output_logits=True, return_dict_in_generate=True, pad_token_id=tok.pad_token_id)  # fmt: skip
            new = o.sequences[0, len(seq) :].tolist()
            top, tokens, kept = [], [], []
            for t, logits in zip(new, o.logits):
                lp = torch.log_softmax(logits[0].float(), dim=-1)
                vals, idx = lp.topk(self.top_logprobs)
                d: dict[str, float] = {}
                for v, i in zip(vals.tolist(), idx.tolist()):
                    text = tok.decode([i])
                    d[text] = max(d.get(text, -1e9), v)
                if t in self.eos_ids:
                    break
                kept.append(t)
                top.append(d)
                tokens.append(tok.decode([t]))
            out.append(Completion(text=tok.decode(kept, skip_special_tokens=True), n_tokens=len(kept), tokens=tokens, top=top))
        return out


def _batch_key(r: Request) -> tuple:
    return r.stop, r.temperature, r.top_p, r.top_k


def _as_list(x) -> list[int]:
    if x is None:
        return []
    return list(x) if isinstance(x, (list, tuple)) else [x]
