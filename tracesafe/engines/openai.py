"""Any OpenAI-compatible endpoint (``vllm serve``, DeepSeek's API, others) through the shared client
(``openai_client``: the openai SDK's retries, a per-attempt deadline, checked replies, redaction),
``concurrency`` requests in flight.

A request with ``messages`` goes to /chat/completions and its reasoning is read from
``message.reasoning_content`` (DeepSeek's API, older vLLM) or ``message.reasoning`` (vLLM's
--reasoning-parser); one without (a prefilled prompt, a judge's rendered template) goes to /completions
with the prompt text, which needs the model's own tokenizer to render it. A request that fails (after the
retries) or gets a malformed reply is counted as failed and not handed on: a rerun retries it. Greedy calls
ask for ``top_logprobs`` per token; a failure is a Completion with ``error``.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from typing import Any

from .base import BaseEngine, Completion, OnDone, Request
from .config import EngineConfig
from .openai_client import Endpoint, ReplyError, first_choice
from .registry import register_engine

log = logging.getLogger(__name__)


@register_engine("openai")
class OpenAIEngine(BaseEngine):
    """``model``: the served model's name. ``tokenizer``: where the model's tokenizer is loaded from to
    render and count (True: ``model`` if it is available locally, never downloaded; a path; None: no
    tokenizer, the server renders). ``key_required``: a missing ``api_key_env`` variable is an error.
    ``url_option``: the option named in a bad-URL error."""

    local_weights = False

    def __init__(self, model: str, config: EngineConfig, *, api_base: str | None = None, api_key_env: str | None = None,
                 key_required: bool = True, request_timeout: float = 600.0, max_retries: int = 6,
                 concurrency: int = 16, tokenizer: str | bool | None = True, top_logprobs: int = 20,
                 url_option: str = "--api-base"):  # fmt: skip
        if config.options:
            raise ValueError(f"the openai engine takes no engine options (-E {', '.join(sorted(config.options))}): "
                             "they configure a local engine; set them on the server")  # fmt: skip
        self.model, self.config = model, config
        self.endpoint = Endpoint(api_base, api_key_env=api_key_env, key_required=key_required, timeout=request_timeout,
                                 max_retries=max_retries, option=url_option)  # fmt: skip
        self.concurrency, self.top_logprobs = concurrency, top_logprobs
        self._tokenizer_from = tokenizer
        self._tokenizer: Any = None
        self._lock = threading.Lock()
        self._failed = 0

    @property
    def tokenizer(self):
        """Loaded on first use: a judge that never chunks or counts never needs it."""
        if self._tokenizer is None and self._tokenizer_from:
            from transformers import AutoTokenizer

            trust = self.config.trust_remote_code
            if self._tokenizer_from is True:
                try:
                    self._tokenizer = AutoTokenizer.from_pretrained(self.model, local_files_only=True, trust_remote_code=trust)
                except Exception:  # not a local model: the server renders the template
                    self._tokenizer_from = None
            else:
                self._tokenizer = AutoTokenizer.from_pretrained(self._tokenizer_from, trust_remote_code=trust)
        return self._tokenizer

    def render(self, messages, chat_template_kwargs) -> str:
        return "" if self.tokenizer is None else super().render(messages, chat_template_kwargs)

    def count(self, text: str) -> int | None:
        return None if self.tokenizer is None else super().count(text)

    def info(self) -> dict[str, Any]:
        from importlib.metadata import version

        return {"name": self.name, "api_base": self.endpoint.url, "openai": version("openai")}

    def close(self) -> None:
        self.endpoint.close()

    def _body(self, req: Request) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "temperature": req.temperature, "top_p": req.top_p, "seed": req.seed, "n": 1}
        if req.max_tokens is not None:
            body["max_tokens"] = req.max_tokens
        if req.top_k > 0:
            body["top_k"] = req.top_k  # a vLLM extension
        if req.stop:
            body["stop"] = req.stop
        if req.messages is not None:
            body["messages"] = req.messages
            if req.chat_template_kwargs:
                body["chat_template_kwargs"] = req.chat_template_kwargs  # vLLM; ignored elsewhere
            return body  # /chat/completions
        body["prompt"] = req.prompt
        body["skip_special_tokens"] = False  # vLLM: keep markers in the text
        return body  # /completions

    def _call(self, req: Request) -> Completion | None:
        try:
            reply, _ = self.endpoint.create(self._body(req))
            c = first_choice(reply)
        except ReplyError as e:
            self._fail(req, str(e))
            return None
        except Exception as e:  # anything else (an SDK surprise) fails this request, not the run
            self._fail(req, self.endpoint.redact(f"{type(e).__name__}: {e}"))
            return None
        usage = c["usage"]
        n = usage.get("completion_tokens")
        if n is None:  # a server that reports no usage: counted here when the tokenizer is local, else unknown
            try:
                n = self.count((c["reasoning"] or "") + c["text"])
            except Exception:  # a worker thread must hand back a completion whatever the tokenizer does
                n = None
        return Completion(c["text"], n, c["finish_reason"], c["stop_reason"], reasoning=c["reasoning"], usage=usage,
                          n_prompt=usage.get("prompt_tokens"))  # fmt: skip

    def _fail(self, req: Request, why: str) -> None:
        with self._lock:
            self._failed += 1
        log.warning("%s failed: %s", req.name or "request", why)

    def run(self, requests: list[Request], on_done: OnDone) -> int:
        """Workers send; this thread hands each finished reply to ``on_done`` (which writes it) at once.
        On Ctrl-C/SIGTERM (KeyboardInterrupt here) nothing more is sent: the workers are daemon threads,
        so requests in flight are abandoned unwritten and a rerun sends them again."""
        self._failed = 0
        todo: queue.SimpleQueue[Request | None] = queue.SimpleQueue()
        done: queue.SimpleQueue[tuple[Request, Completion | None]] = queue.SimpleQueue()
        stop = threading.Event()

        def work() -> None:
            while (req := todo.get()) is not None and not stop.is_set():
                done.put((req, self._call(req)))

        for r in requests:
            todo.put(r)
        workers = [threading.Thread(target=work, daemon=True) for _ in range(max(1, min(self.concurrency, len(requests))))]
        for w in workers:
            w.start()
        pending = len(requests)
        try:
            while pending:
                req, completion = done.get()
                pending -= 1
                if completion is None:
                    continue
                for follow in on_done(req, completion):  # on_done runs in this thread only
                    todo.put(follow)
                    pending += 1
        finally:
            stop.set()
            for _ in workers:
                todo.put(None)
        return self._failed

    def greedy(self, prompts: list[str], max_tokens: int) -> list[Completion]:
        """/completions with each rendered prompt as it is (no special tokens added: the template writes them)."""
        bodies = [{"model": self.model, "prompt": p, "max_tokens": max_tokens, "temperature": 0.0,
                   "logprobs": self.top_logprobs, "add_special_tokens": False} for p in prompts]  # fmt: skip
        out = []
        for res in self.endpoint.map(bodies, self.concurrency):
            if res.error is not None:
                out.append(Completion(error=res.error, text=res.text or ""))
                continue
            try:
                c = first_choice(res.json)
                lp = c["choice"].get("logprobs") or {}
                top = [dict(d or {}) for d in (lp.get("top_logprobs") or [])]
                tokens = list(lp.get("tokens") or [])
                out.append(Completion(text=c["text"], n_tokens=len(tokens), tokens=tokens, top=top, usage=c["usage"]))
            except (ReplyError, AttributeError, TypeError, ValueError) as e:
                why = str(e) if isinstance(e, ReplyError) else f"malformed reply: logprobs: {e}"
                out.append(Completion(error=why, text=self.endpoint.redact(json.dumps(res.json)[:2000])))
        return out
