"""What an engine is: the ``Engine`` protocol, the request it computes and the ``Completion`` it returns,
for the model under test (sampled ``run``) and the grader (``greedy`` with top logprobs) alike."""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol


@dataclass
class Request:
    """One sampled completion to compute: continue ``prompt`` (the exact rendered text) for at most
    ``max_tokens`` (None: up to the context), ending early on a ``stop`` string. ``messages``: the same
    conversation for chat endpoints that render it themselves (None: the prompt text is continued as it is).
    ``name`` says in warnings what failed (never the text); ``job`` is the caller's, handed back untouched."""

    prompt: str
    max_tokens: int | None
    stop: list[str] | None = None
    seed: int = 0
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = -1
    messages: list[dict[str, str]] | None = None
    chat_template_kwargs: dict[str, Any] | None = None
    name: str = ""
    job: Any = None


@dataclass
class Completion:
    """What an engine generated. Sampled runs fill the counts and reasons; greedy calls fill ``tokens`` (each
    generated token decoded) and ``top`` (per generated token: decoded text -> logprob), or ``error`` with
    whatever text there was."""

    text: str = ""
    n_tokens: int | None = 0  # None: the engine could not count them (an API that reports no usage)
    finish_reason: str | None = None  # "stop" | "length" | None (unknown)
    stop_reason: str | int | None = None  # the stop string or token that ended it, when the engine says
    reasoning: str | None = None  # a separate reasoning field (OpenAI-compatible servers)
    usage: dict[str, Any] | None = None
    n_prompt: int | None = None  # prompt tokens as the engine counted them (None: unknown)
    tokens: list[str] = field(default_factory=list)
    top: list[dict[str, float]] = field(default_factory=list)
    error: str | None = None


OnDone = Callable[[Request, Completion], list[Request]]


class Engine(Protocol):
    """A model behind one engine. ``render`` applies the model's chat template ("" when the engine cannot:
    the server renders); ``count`` counts tokens (None if unknown); ``run`` computes sampled requests,
    calling ``on_done`` for each finished one, which returns the follow-up requests to compute next, and
    returns how many requests failed (a failed request is not handed to ``on_done``); ``greedy`` decodes
    each rendered prompt greedily with top logprobs, one Completion per prompt in order (errors as values);
    ``info`` describes the engine for provenance (JSON). ``tokenizer``: the model's HF tokenizer, or None.
    The caller owns the lifetime: ``with get_engine(...) as eng:`` closes it."""

    name: str
    tokenizer: Any

    def render(self, messages: list[dict[str, str]], chat_template_kwargs: dict[str, Any]) -> str: ...

    def count(self, text: str) -> int | None: ...

    def run(self, requests: list[Request], on_done: OnDone) -> int: ...

    def greedy(self, prompts: list[str], max_tokens: int) -> list[Completion]: ...

    def info(self) -> dict[str, Any]: ...

    def close(self) -> None: ...

    def __enter__(self) -> Engine: ...

    def __exit__(self, *exc: object) -> None: ...


class BaseEngine:
    """What engines share: the context manager, rendering and counting with the model's tokenizer, and
    greedy decoding of prompts that fit the context (``_greedy_ids`` on token ids; one too long is an error).
    ``local_weights``: the engine loads weights here (so they are resolved and fingerprinted, and one such
    engine is held at a time); ``judge_batch_size``: how many items a judge call should carry."""

    name: ClassVar[str] = ""
    local_weights: ClassVar[bool] = True
    judge_batch_size: ClassVar[int] = 32
    tokenizer: Any = None
    max_model_len: int = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        gc.collect()  # the weights' memory is back before the next engine loads

    def render(self, messages: list[dict[str, str]], chat_template_kwargs: dict[str, Any]) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **chat_template_kwargs)

    def count(self, text: str) -> int | None:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def greedy(self, prompts: list[str], max_tokens: int) -> list[Completion]:
        if not prompts:
            return []
        # Rendered prompts carry their special tokens as text: none are added.
        ids = self.tokenizer(prompts, add_special_tokens=False)["input_ids"]
        out: list[Completion] = [Completion() for _ in prompts]
        fits = []
        for i, seq in enumerate(ids):
            if len(seq) + max_tokens > self.max_model_len:
                out[i] = Completion(error=f"prompt of {len(seq)} tokens exceeds the judge context ({self.max_model_len})")
            else:
                fits.append(i)
        if fits:
            for i, c in zip(fits, self._greedy_ids([ids[i] for i in fits], max_tokens)):
                out[i] = c
        return out

    def _greedy_ids(self, ids: list[list[int]], max_tokens: int) -> list[Completion]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _vllm_completion(self, text: str, token_ids, steps: list[dict[int, tuple[float, str | None]]]) -> Completion:
        """A vLLM greedy output (offline or through Ray): per generated token, its text and the top tokens'
        logprobs (tokens decoding to the same text merged by max)."""
        top, tokens = [], []
        for step_id, step in zip(token_ids, steps):
            d: dict[str, float] = {}
            for tid, (logprob, decoded) in step.items():
                t = decoded if decoded is not None else self.tokenizer.decode([tid])
                d[t] = max(d.get(t, -1e9), float(logprob))
            top.append(d)
            chosen = step.get(step_id)
            tokens.append(chosen[1] if chosen is not None and chosen[1] is not None else self.tokenizer.decode([step_id]))
        return Completion(text=text, n_tokens=len(tokens), tokens=tokens, top=top)
