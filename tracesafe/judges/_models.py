"""Generation backends for the model judges: vLLM (offline engine), transformers, vLLM replicas over a
Ray cluster (Ray Data's LLM processor), or an OpenAI-compatible completions server. All take rendered prompt *strings* (the judge's published
template, special tokens written out as text), tokenise them without adding special tokens, decode
greedily and return the text plus the top log-probabilities of every generated token, which the
judges read their scores from.

Engines are cached by (path, backend, options) so two judges on one model (e.g. Llama Guard and a
HarmBench run on the same tiny test model) share one engine; ``release_all`` frees them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..engines.config import EngineConfig, vllm_engine_args, vllm_on_cpu
from ..engines.packages import require

BACKENDS = ("vllm", "hf", "openai", "ray")


@dataclass
class Generation:
    text: str = ""
    tokens: list[str] = field(default_factory=list)  # decoded generated tokens
    top: list[dict[str, float]] = field(default_factory=list)  # per generated token: decoded -> logprob
    error: str | None = None
    usage: dict[str, int] = field(default_factory=dict)


def default_backend() -> str:
    import importlib.util

    return "vllm" if importlib.util.find_spec("vllm") is not None else "hf"


class LocalLM:
    """A local model on vLLM, transformers or Ray (``replicas`` vLLM engines), greedy decoding with top-k
    logprobs."""

    def __init__(self, path: str, backend: str, *, dtype: str = "auto", max_model_len: int | None = None,
                 gpu_memory_utilization: float | None = None, enable_prefix_caching: bool = True,
                 trust_remote_code: bool = False, top_logprobs: int = 20, enforce_eager: bool = False,
                 replicas: int = 1):  # fmt: skip
        self.path, self.backend = path, backend
        self.dtype, self.max_model_len = dtype, max_model_len
        self.gpu_memory_utilization = gpu_memory_utilization
        self.enable_prefix_caching = enable_prefix_caching
        self.trust_remote_code = trust_remote_code
        self.top_logprobs = top_logprobs
        self.enforce_eager = enforce_eager
        self.replicas = replicas
        self._tokenizer = None
        self._engine = None

    def engine_config(self) -> EngineConfig:
        return EngineConfig(dtype=self.dtype, max_model_len=self.max_model_len, gpu_memory_utilization=self.gpu_memory_utilization,
                            enable_prefix_caching=self.enable_prefix_caching, enforce_eager=self.enforce_eager,
                            trust_remote_code=self.trust_remote_code)  # fmt: skip

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            require("transformers")
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(self.path, trust_remote_code=self.trust_remote_code)
        return self._tokenizer

    def _load(self):
        if self._engine is not None:
            return self._engine
        require({"vllm": "vllm", "ray": "ray", "hf": "torch"}[self.backend])
        if self.backend == "ray":
            require("vllm")
        require("transformers")
        if self.backend == "vllm":
            from vllm import LLM

            self._engine = LLM(model=self.path, **vllm_engine_args(self.engine_config(), on_cpu=vllm_on_cpu(), sampled=False))
            self.max_len = self._engine.llm_engine.model_config.max_model_len
        elif self.backend == "ray":
            from transformers import AutoConfig

            from ..engines.ray import cluster_is_cpu_only, vllm_processor
            cpu_only = cluster_is_cpu_only()
            cfg = AutoConfig.from_pretrained(self.path, trust_remote_code=self.trust_remote_code)
            self.max_len = self.max_model_len or getattr(cfg, "max_position_embeddings", 4096)
            engine_cfg = replace(self.engine_config(), max_model_len=self.max_len)
            engine_kwargs = vllm_engine_args(engine_cfg, on_cpu=cpu_only, sampled=False)
            self._engine = vllm_processor(self.path, engine_kwargs, replicas=self.replicas, batch_size=64, cpu_only=cpu_only)
        else:
            import torch
            from transformers import AutoModelForCausalLM

            dtype = "auto" if self.dtype == "auto" else getattr(torch, {"float": "float32", "half": "float16"}.get(self.dtype, self.dtype))
            model = AutoModelForCausalLM.from_pretrained(self.path, dtype=dtype, trust_remote_code=self.trust_remote_code)
            model.eval()
            if torch.cuda.is_available():
                model.to("cuda")
            self._engine = model
            self.max_len = self.max_model_len or getattr(model.config, "max_position_embeddings", 4096)
        return self._engine

    def generate(self, prompts: list[str], max_tokens: int) -> list[Generation]:
        engine = self._load()
        tok = self.tokenizer
        ids = tok(prompts, add_special_tokens=False)["input_ids"]
        out: list[Generation | None] = [None] * len(prompts)
        run = []
        for i, seq in enumerate(ids):
            if len(seq) + max_tokens > self.max_len:
                out[i] = Generation(error=f"prompt of {len(seq)} tokens exceeds the judge context ({self.max_len})")
            else:
                run.append(i)
        if run:
            gens = {"vllm": self._vllm, "ray": self._ray, "hf": self._hf}[self.backend](engine, [ids[i] for i in run], max_tokens)
            for i, g in zip(run, gens):
                out[i] = g
        return out  # type: ignore[return-value]

    def _vllm(self, llm, ids: list[list[int]], max_tokens: int) -> list[Generation]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        sp = SamplingParams(temperature=0.0, max_tokens=max_tokens, logprobs=self.top_logprobs, seed=0)
        res = llm.generate([TokensPrompt(prompt_token_ids=s) for s in ids], sp, use_tqdm=False)
        return [self._generation(r.outputs[0].text, r.outputs[0].token_ids,
                                 [{t: (lp.logprob, lp.decoded_token) for t, lp in step.items()} for step in r.outputs[0].logprobs or []])
                for r in res]  # fmt: skip

    def _ray(self, processor, ids: list[list[int]], max_tokens: int) -> list[Generation]:
        """One Ray job over all prompts: the same greedy request as ``_vllm``, as rows. Ray keeps vLLM's
        per-token logprobs as {token id: {logprob, rank, decoded_token}}."""
        import ray

        sp = {"temperature": 0.0, "max_tokens": max_tokens, "logprobs": self.top_logprobs, "seed": 0}
        rows = [{"key": i, "tokenized_prompt": s, "sampling_params": sp} for i, s in enumerate(ids)]
        gens = [Generation(error="Ray returned no output for this prompt") for _ in ids]
        for out in processor(ray.data.from_items(rows)).iter_rows():
            steps = [{int(t): (d["logprob"], d.get("decoded_token")) for t, d in step.items() if d is not None}
                     for step in out.get("logprobs") or []]  # fmt: skip
            gens[int(out["key"])] = self._generation(out["generated_text"], list(out["generated_tokens"]), steps)
        return gens

    def _generation(self, text: str, token_ids, steps: list[dict[int, tuple[float, str | None]]]) -> Generation:
        """A vLLM output as a Generation: per generated token, its text and the top tokens' logprobs
        (tokens decoding to the same text merged by max)."""
        top, tokens = [], []
        for step_id, step in zip(token_ids, steps):
            d: dict[str, float] = {}
            for tid, (logprob, decoded) in step.items():
                t = decoded if decoded is not None else self.tokenizer.decode([tid])
                d[t] = max(d.get(t, -1e9), float(logprob))
            top.append(d)
            chosen = step.get(step_id)
            tokens.append(chosen[1] if chosen is not None and chosen[1] is not None else self.tokenizer.decode([step_id]))
        return Generation(text=text, tokens=tokens, top=top)

    def _hf(self, model, ids: list[list[int]], max_tokens: int) -> list[Generation]:
        import torch

        tok = self.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
        eos = set(_as_list(model.generation_config.eos_token_id) or _as_list(tok.eos_token_id))
        gens = []
        for seq in ids:  # one at a time: no padding effects, identical to unbatched published usage
            x = torch.tensor([seq], device=model.device)
            with torch.inference_mode():
                o = model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=max_tokens, do_sample=False,
                                   output_logits=True, return_dict_in_generate=True, pad_token_id=pad)  # fmt: skip
            new = o.sequences[0, len(seq):].tolist()
            top, tokens, kept = [], [], []
            for t, logits in zip(new, o.logits):
                lp = torch.log_softmax(logits[0].float(), dim=-1)
                vals, idx = lp.topk(self.top_logprobs)
                d: dict[str, float] = {}
                for v, i in zip(vals.tolist(), idx.tolist()):
                    text = tok.decode([i])
                    d[text] = max(d.get(text, -1e9), v)
                if t in eos:
                    break
                kept.append(t)
                top.append(d)
                tokens.append(tok.decode([t]))
            gens.append(Generation(text=tok.decode(kept, skip_special_tokens=True), tokens=tokens, top=top))
        return gens

    def close(self) -> None:
        if self._engine is not None and self.backend == "vllm":
            try:
                self._engine.llm_engine.engine_core.shutdown()
            except Exception:
                pass
        self._engine = None


class RemoteLM:
    """A judge model served by an OpenAI-compatible server (e.g. `vllm serve`), via /completions with the
    rendered prompt text (no special tokens added: the template writes them)."""

    def __init__(self, model: str, *, base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 tokenizer: str | None = None, top_logprobs: int = 20, request_timeout: float = 120.0,
                 max_retries: int = 4, concurrency: int = 8):  # fmt: skip
        from ..engines.openai_client import Endpoint

        self.model = model
        self.endpoint = Endpoint(base_url or os.environ.get("OPENAI_BASE_URL") or "http://127.0.0.1:8000/v1",
                                 api_key_env=api_key_env, key_required=False, timeout=request_timeout,
                                 max_retries=max_retries, option="base_url")  # fmt: skip
        self.top_logprobs = top_logprobs
        self.concurrency = concurrency
        self._tok_path = tokenizer or (model if Path(model).is_dir() else None)
        self._tokenizer = None

    @property
    def tokenizer(self):
        if self._tokenizer is None and self._tok_path:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(self._tok_path)
        return self._tokenizer

    def generate(self, prompts: list[str], max_tokens: int) -> list[Generation]:
        from ..engines.openai_client import ReplyError, first_choice

        bodies = [{"model": self.model, "prompt": p, "max_tokens": max_tokens, "temperature": 0.0,
                   "logprobs": self.top_logprobs, "add_special_tokens": False} for p in prompts]  # fmt: skip
        gens = []
        for res in self.endpoint.map(bodies, self.concurrency):
            if res.error is not None:
                gens.append(Generation(error=res.error, text=res.text or ""))
                continue
            try:
                c = first_choice(res.json)
                lp = c["choice"].get("logprobs") or {}
                top = [dict(d or {}) for d in (lp.get("top_logprobs") or [])]
                gens.append(Generation(text=c["text"], tokens=list(lp.get("tokens") or []), top=top, usage=c["usage"]))
            except (ReplyError, AttributeError, TypeError, ValueError) as e:
                why = str(e) if isinstance(e, ReplyError) else f"malformed reply: logprobs: {e}"
                gens.append(Generation(error=why, text=self.endpoint.redact(json.dumps(res.json)[:2000])))
        return gens

    def close(self) -> None:
        self.endpoint.close()


def _as_list(x) -> list[int]:
    if x is None:
        return []
    return list(x) if isinstance(x, (list, tuple)) else [x]


_ENGINES: dict[tuple, LocalLM | RemoteLM] = {}


def get_lm(model: str, backend: str, **opts: Any) -> LocalLM | RemoteLM:
    key = (model, backend, tuple(sorted((k, repr(v)) for k, v in opts.items())))
    lm = _ENGINES.get(key)
    if lm is None:
        if backend == "openai":
            lm = RemoteLM(model, **opts)
        else:
            # One local engine at a time: a second model (another judge) replaces the first.
            for k in [k for k, v in _ENGINES.items() if isinstance(v, LocalLM)]:
                _ENGINES.pop(k).close()
            lm = LocalLM(model, backend, **opts)
        _ENGINES[key] = lm
    return lm


def release_all() -> None:
    while _ENGINES:
        _, lm = _ENGINES.popitem()
        lm.close()
    import gc

    gc.collect()
