"""Shared machinery of the local-model judges (Llama Guard, WildGuard, HarmBench): model resolution,
backend choice, token chunking, batching through one engine, error handling and logprob scores.
A subclass supplies ``render(item) -> prompt string`` (the published template) and
``parse(generation) -> JudgeResult`` (the published parser)."""

from __future__ import annotations

import hashlib
import math
from typing import Any, ClassVar

from ._base import BaseJudge, JudgeItem, JudgeResult
from ..engines.weights import fingerprint, resolve_weights
from ._models import BACKENDS, Generation, default_backend, get_lm

PROBE = JudgeItem(text="{response}", prompt="{prompt}")  # renders the template itself, for the cache key


class ModelJudge(BaseJudge):
    needs_model: ClassVar[bool] = True
    default_model: ClassVar[str] = ""
    max_tokens: ClassVar[int] = 32
    default_chunk_tokens: ClassVar[int] = 2048
    default_chunk_overlap: ClassVar[int] = 128

    def __init__(self, model: str | None = None, backend: str | None = None, dtype: str = "auto",
                 chunk_tokens: int | None = None, chunk_overlap: int | None = None, max_model_len: int | None = None,
                 gpu_memory_utilization: float | None = None, enable_prefix_caching: bool = True,
                 trust_remote_code: bool = False, top_logprobs: int = 20, base_url: str | None = None,
                 api_key_env: str = "OPENAI_API_KEY", tokenizer: str | None = None, concurrency: int = 8,
                 request_timeout: float = 120.0, max_retries: int = 4, enforce_eager: bool = False, replicas: int = 1):  # fmt: skip
        self.backend = backend or default_backend()
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        self.model_arg = model or self.default_model
        self.chunk_tokens = chunk_tokens or self.default_chunk_tokens
        self.chunk_overlap = self.default_chunk_overlap if chunk_overlap is None else chunk_overlap
        if self.chunk_overlap >= self.chunk_tokens:
            self.chunk_overlap = self.chunk_tokens // 8
        if self.backend == "openai":
            self.model_path = self.model_arg
            self._fingerprint = None
            self._lm_opts: dict[str, Any] = {"base_url": base_url, "api_key_env": api_key_env, "tokenizer": tokenizer,
                                             "top_logprobs": top_logprobs, "concurrency": concurrency,
                                             "request_timeout": request_timeout, "max_retries": max_retries}  # fmt: skip
        else:
            self.model_path = resolve_weights(self.model_arg, what="judge model")
            self._fingerprint = fingerprint(self.model_path)  # the trace's model_hash for the same weights
            self._lm_opts = {"dtype": dtype, "max_model_len": max_model_len, "gpu_memory_utilization": gpu_memory_utilization,
                             "enable_prefix_caching": enable_prefix_caching, "trust_remote_code": trust_remote_code,
                             "top_logprobs": top_logprobs, "enforce_eager": enforce_eager}  # fmt: skip
            if self.backend == "ray":
                self._lm_opts["replicas"] = replicas
        self._dtype = dtype

    @property
    def default_batch_size(self) -> int:
        # On Ray each judge call is one Ray job that starts its vLLM engines: few, large calls.
        return 4096 if self.backend == "ray" else 32

    @property
    def lm(self):
        return get_lm(self.model_path, self.backend, **self._lm_opts)

    def config(self) -> dict[str, Any]:
        template = hashlib.sha256(self.render(PROBE).encode()).hexdigest()[:16]
        return {"model": self.model_arg, "weights": self._fingerprint, "backend": self.backend, "dtype": self._dtype,
                "template": template, "chunk_tokens": self.chunk_tokens, "chunk_overlap": self.chunk_overlap,
                "max_tokens": self.max_tokens}  # fmt: skip

    def chunk(self, texts: list[str]) -> list[list[tuple[int, int]]]:
        from ._chunk import tokenizer_chunker

        tok = self.lm.tokenizer
        if tok is not None:
            return tokenizer_chunker(tok, self.chunk_tokens, self.chunk_overlap)(texts)
        # A remote judge without a local tokenizer: ~4 characters per token.
        size, step = 4 * self.chunk_tokens, 4 * (self.chunk_tokens - self.chunk_overlap)
        return [[(a, min(a + size, len(t))) for a in range(0, max(len(t) - 4 * self.chunk_overlap, 1), step)] or [(0, 0)]
                for t in texts]  # fmt: skip

    def render(self, item: JudgeItem) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def parse(self, gen: Generation) -> JudgeResult:  # pragma: no cover - abstract
        raise NotImplementedError

    def judge(self, items: list[JudgeItem]) -> list[JudgeResult]:
        if not items:  # transformers' tokenizer fails on an empty batch
            return []
        gens = self.lm.generate([self.render(it) for it in items], self.max_tokens)
        out = []
        for g in gens:
            if g.error is not None:
                r = JudgeResult.failed(g.error, g.text or None)
            else:
                r = self.parse(g)
                if r.status == "error" and r.raw_output is None:
                    r.raw_output = g.text
            if g.usage:
                r.extra["usage"] = g.usage
            out.append(r)
        return out

    @staticmethod
    def unparseable(gen: Generation, what: str) -> JudgeResult:
        """An output the published parser rejects; a judge that declined to judge is named as such."""
        from .refusal import find_refusal

        why = "judge refused to classify" if find_refusal(gen.text) else f"unparseable judge output (expected {what})"
        return JudgeResult.failed(why, gen.text)


def answer_prob(gen: Generation, index: int | None, positive: set[str], negative: set[str]) -> float | None:
    """P(positive answer) at generated token ``index`` from its top logprobs (token texts compared after
    strip + lower). None when neither answer is among the top tokens."""
    if index is None or index >= len(gen.top):
        return None
    p_pos = p_neg = 0.0
    for text, lp in gen.top[index].items():
        t = text.strip().lower()
        if t in positive:
            p_pos += math.exp(lp)
        elif t in negative:
            p_neg += math.exp(lp)
    if p_pos == 0.0 and p_neg == 0.0:
        return None
    return round(p_pos, 6)


def first_content_token(gen: Generation) -> int | None:
    """Index of the first generated token that is not whitespace (Llama Guard 3 emits "\\n\\n" first)."""
    for i, t in enumerate(gen.tokens):
        if t.strip():
            return i
    return None


def token_after(gen: Generation, marker: str) -> int | None:
    """Index of the first non-whitespace token generated after the text ``marker`` (case-insensitive)."""
    acc = ""
    marker = marker.lower()
    found = False
    for i, t in enumerate(gen.tokens):
        if found and t.strip():
            return i
        acc += t
        if not found and acc.lower().rstrip().endswith(marker):
            found = True
    return None
