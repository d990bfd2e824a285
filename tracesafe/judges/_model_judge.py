"""Shared machinery of the local-model judges (Llama Guard, WildGuard, HarmBench): model resolution,
engine choice, token chunking, batching through one engine, error handling and logprob scores.
A subclass supplies ``render(item) -> prompt string`` (the published template) and
``parse(completion) -> JudgeResult`` (the published parser); the engine decodes greedily with top logprobs.

The engine is the caller's: the judge stage hands its judges an ``EnginePool`` (``use_engines``), which opens
the judge's ``engine_spec`` on first use, shares it with other judges on the same model and closes it when
the stage ends. A judge used on its own opens its engine in a pool of its own, closed by ``close()``."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, ClassVar

from .._util.provenance import sha256_text
from ..engines.base import Completion, Engine
from ..engines.config import EngineConfig
from ..engines.registry import EnginePool, EngineSpec, default_engine, engine_class
from ..engines.weights import fingerprint, resolve_weights
from ._base import BaseJudge, JudgeItem, JudgeResult

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
                 request_timeout: float = 120.0, max_retries: int = 4, enforce_eager: bool = False, replicas: int = 1,
                 engine_options: dict[str, Any] | None = None):  # fmt: skip
        self.backend = backend or default_engine()
        self.local = engine_class(self.backend).local_weights  # an unknown engine fails here, naming the known ones
        self.model_arg = model or self.default_model
        self.chunk_tokens = chunk_tokens or self.default_chunk_tokens
        self.chunk_overlap = self.default_chunk_overlap if chunk_overlap is None else chunk_overlap
        if self.chunk_overlap >= self.chunk_tokens:
            self.chunk_overlap = self.chunk_tokens // 8
        # A bad setting (dtype, replicas) is reported before the weights are looked for.
        config = EngineConfig(dtype=dtype, max_model_len=max_model_len, gpu_memory_utilization=gpu_memory_utilization,
                              enable_prefix_caching=enable_prefix_caching, enforce_eager=enforce_eager,
                              trust_remote_code=trust_remote_code, data_parallel_size=replicas,
                              options=dict(engine_options or {}))  # fmt: skip
        if self.local:
            self.model_path = resolve_weights(self.model_arg, what="judge model")
            self._fingerprint = fingerprint(self.model_path)  # the trace's model_hash for the same weights
        else:
            self.model_path, self._fingerprint = self.model_arg, None
        # One set of options for every engine; each takes its own (a served model: the endpoint's).
        self.engine_spec = EngineSpec.of(
            self.backend, self.model_path, config, top_logprobs=top_logprobs, concurrency=concurrency,
            api_base=base_url or os.environ.get("OPENAI_BASE_URL") or "http://127.0.0.1:8000/v1", api_key_env=api_key_env,
            key_required=False, url_option="base_url", request_timeout=request_timeout, max_retries=max_retries,
            tokenizer=tokenizer or (self.model_path if Path(self.model_path).is_dir() else None),
        )  # fmt: skip
        self._dtype = dtype
        self._engine_options = dict(engine_options or {})
        self._engines: EnginePool | None = None
        self._own_engines: EnginePool | None = None

    @property
    def default_batch_size(self) -> int:
        return self.engine_spec.engine.judge_batch_size

    def use_engines(self, pool: EnginePool) -> None:
        """Take the engine from the caller's pool, which owns it."""
        self._engines = pool

    @property
    def engine(self) -> Engine:
        if self._engines is None:  # used on its own: a pool of its own, closed with the judge
            self._engines = self._own_engines = EnginePool()
        return self._engines.get(self.engine_spec)

    def close(self) -> None:
        if self._own_engines is not None:
            self._own_engines.close()
            self._engines = self._own_engines = None

    def config(self) -> dict[str, Any]:
        template = sha256_text(self.render(PROBE), 16)
        return {"model": self.model_arg, "weights": self._fingerprint, "backend": self.backend, "dtype": self._dtype,
                "template": template, "chunk_tokens": self.chunk_tokens, "chunk_overlap": self.chunk_overlap,
                "max_tokens": self.max_tokens, **({"engine_options": self._engine_options} if self._engine_options else {})}  # fmt: skip

    def chunk(self, texts: list[str]) -> list[list[tuple[int, int]]]:
        from ._chunk import tokenizer_chunker

        tok = self.engine.tokenizer
        if tok is not None:
            return tokenizer_chunker(tok, self.chunk_tokens, self.chunk_overlap)(texts)
        # A remote judge without a local tokenizer: ~4 characters per token.
        size, step = 4 * self.chunk_tokens, 4 * (self.chunk_tokens - self.chunk_overlap)
        return [[(a, min(a + size, len(t))) for a in range(0, max(len(t) - 4 * self.chunk_overlap, 1), step)] or [(0, 0)]
                for t in texts]  # fmt: skip

    def render(self, item: JudgeItem) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def parse(self, gen: Completion) -> JudgeResult:  # pragma: no cover - abstract
        raise NotImplementedError

    def judge(self, items: list[JudgeItem]) -> list[JudgeResult]:
        if not items:  # transformers' tokenizer fails on an empty batch
            return []
        gens = self.engine.greedy([self.render(it) for it in items], self.max_tokens)
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
    def unparseable(gen: Completion, what: str) -> JudgeResult:
        """An output the published parser rejects; a judge that declined to judge is named as such."""
        from .refusal import find_refusal

        why = "judge refused to classify" if find_refusal(gen.text) else f"unparseable judge output (expected {what})"
        return JudgeResult.failed(why, gen.text)


def answer_prob(gen: Completion, index: int | None, positive: set[str], negative: set[str]) -> float | None:
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


def first_content_token(gen: Completion) -> int | None:
    """Index of the first generated token that is not whitespace (Llama Guard 3 emits "\\n\\n" first)."""
    for i, t in enumerate(gen.tokens):
        if t.strip():
            return i
    return None


def token_after(gen: Completion, marker: str) -> int | None:
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
