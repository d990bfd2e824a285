"""Any OpenAI-compatible endpoint (`vllm serve`, DeepSeek's API, others) through the shared client
(tracesafe/engines/openai_client.py: the openai SDK's retries, a per-attempt deadline, checked replies, redaction),
``concurrency`` requests in flight.

Normal thinking mode uses /chat/completions and reads the reasoning from `message.reasoning_content`
(DeepSeek's API, older vLLM) or `message.reasoning` (vLLM's --reasoning-parser). The prefill modes
(zerothink, lessthink, morethink) need the raw prompt text, so they use /completions with the prompt
rendered by the model's own tokenizer, which must then be loadable locally (`--model` a local path or
cached hub name). The API key is read from the environment variable named by `--api-key-env` and is
never written anywhere. A request that fails (after the retries) or gets a malformed reply is counted in
``failed`` and not written: a rerun retries it. Every good reply is handed on as it arrives.
"""

from __future__ import annotations

import queue
import sys
import threading
from collections.abc import Callable
from typing import Any

from ..engines.openai_client import Endpoint, ReplyError, first_choice
from .core import Completion, GenerateConfig, Request, messages


class OpenAIBackend:
    name = "openai"

    def __init__(self, cfg: GenerateConfig):
        self.cfg = cfg
        self.endpoint = Endpoint(cfg.api_base, api_key_env=cfg.api_key_env, timeout=cfg.request_timeout,
                                 max_retries=cfg.max_retries)  # fmt: skip
        self.tokenizer = self._local_tokenizer()
        if cfg.thinking_mode != "normal" and self.tokenizer is None:
            raise ValueError(f"thinking mode {cfg.thinking_mode!r} on the openai backend renders the prompt with the "
                             f"model's tokenizer, which could not be loaded from {cfg.model!r} without a download")  # fmt: skip
        self.failed = 0
        self._lock = threading.Lock()

    def _local_tokenizer(self):
        try:
            from transformers import AutoTokenizer

            return AutoTokenizer.from_pretrained(self.cfg.model, local_files_only=True, trust_remote_code=self.cfg.trust_remote_code)
        except Exception:  # not a local model: the server renders the template
            return None

    def render(self, msgs, chat_template_kwargs) -> str:
        if self.tokenizer is None:
            return ""  # unknown: the server applies its template
        return self.tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True, **chat_template_kwargs)

    def count(self, text: str) -> int | None:
        return None if self.tokenizer is None else len(self.tokenizer.encode(text, add_special_tokens=False))

    def info(self) -> dict[str, Any]:
        from importlib.metadata import version

        return {"name": self.name, "api_base": self.endpoint.url, "openai": version("openai")}

    def _body(self, req: Request) -> dict[str, Any]:
        cfg = self.cfg
        body: dict[str, Any] = {"model": cfg.model, "temperature": cfg.temperature, "top_p": cfg.top_p,
                                "seed": req.job.seed + req.job.retries, "n": 1}  # fmt: skip
        if req.max_tokens is not None:
            body["max_tokens"] = req.max_tokens
        if cfg.top_k > 0:
            body["top_k"] = cfg.top_k  # a vLLM extension
        if req.stop:
            body["stop"] = req.stop
        if cfg.thinking_mode == "normal":
            body["messages"] = messages(req.job.prompt, cfg)
            if cfg.chat_template_kwargs:
                body["chat_template_kwargs"] = cfg.chat_template_kwargs  # vLLM; ignored elsewhere
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
        return Completion(c["text"], usage.get("completion_tokens") or 0, c["finish_reason"], c["stop_reason"],
                          reasoning=c["reasoning"], usage=usage, n_prompt=usage.get("prompt_tokens"))  # fmt: skip

    def _fail(self, req: Request, why: str) -> None:
        with self._lock:
            self.failed += 1
        print(f"warning: trace {req.job.id} (prompt {req.job.prompt.id}, sample {req.job.sample}) failed: {why}", file=sys.stderr)

    def run(self, requests: list[Request], on_done: Callable[[Request, Completion], list[Request]]) -> None:
        """Workers send; this thread hands each finished reply to ``on_done`` (which writes it) at once.
        On Ctrl-C/SIGTERM (KeyboardInterrupt here) nothing more is sent: the workers are daemon threads,
        so requests in flight are abandoned unwritten and a rerun sends them again."""
        todo: queue.SimpleQueue[Request | None] = queue.SimpleQueue()
        done: queue.SimpleQueue[tuple[Request, Completion | None]] = queue.SimpleQueue()
        stop = threading.Event()

        def work() -> None:
            while (req := todo.get()) is not None and not stop.is_set():
                done.put((req, self._call(req)))

        for r in requests:
            todo.put(r)
        workers = [threading.Thread(target=work, daemon=True) for _ in range(max(1, min(self.cfg.concurrency, len(requests))))]
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
