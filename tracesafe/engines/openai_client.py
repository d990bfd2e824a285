"""One client for every OpenAI-compatible endpoint tracesafe talks to (the ``generate --backend openai``
engine, the rubric judge, model judges with ``--backend openai``): the official ``openai`` SDK, which
retries 408/409/429/5xx, timeouts and connection errors with backoff, honouring ``Retry-After``.

Added here:
- a per-attempt deadline: an attempt that has not finished ``timeout`` seconds after it started is
  abandoned (and retried), even when the server keeps trickling bytes (the SDK's own timeouts are per
  read, so a slow trickle would otherwise hold a request for as long as the server likes);
- checked replies: a 200 reply that is not a JSON object with ``choices[0]`` holding a text is a failed
  request (``ReplyError``), never a crash;
- redaction: every message that leaves this module (error text, reply bodies kept as evidence) has
  URL credentials, bearer tokens, ``sk-`` keys and the key's own value replaced by ``***``.

The API key is read from the environment variable the caller names and never written anywhere; with no
key no ``Authorization`` header is sent (``OPENAI_API_KEY`` is not picked up behind the caller's back).
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .packages import require

_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#@\s]+@")
_SECRET_PARAM = re.compile(r"(?i)([?&;](?:api[_-]?key|key|token|access[_-]?token|auth|secret|password|sig|signature)=)[^&#\s\"']+")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=:-]+")
_SK = re.compile(r"\bsk-[A-Za-z0-9_-]{4,}")


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with credentials replaced by ``***``: URL user info and secret query parameters, bearer/basic
    tokens, ``sk-`` keys, and each of ``secrets`` (e.g. the API key's value) wherever it appears."""
    for s in sorted((s for s in secrets if s and len(s) >= 4), key=len, reverse=True):
        text = text.replace(s, "***")
    text = _USERINFO.sub(r"\1***@", text)
    text = _SECRET_PARAM.sub(r"\1***", text)
    text = _BEARER.sub(r"\1 ***", text)
    return _SK.sub("sk-***", text)


def check_base_url(url: str | None, option: str = "--api-base") -> str:
    """The base URL without a trailing slash; a ValueError at once for anything that is not http(s)://HOST."""
    if not url:
        raise ValueError(f"{option} is required (e.g. http://127.0.0.1:8000/v1)")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        shown = redact(url) if "://" in url or "@" not in url else "***@" + url.rsplit("@", 1)[1]  # user:key@host
        raise ValueError(f"{option} {shown!r}: expected a URL starting with http:// or https:// and naming a "
                         f"host, e.g. http://127.0.0.1:8000/v1")  # fmt: skip
    if parts.query or parts.fragment:  # the SDK appends paths after it: ".../v1?token=x" + "chat/completions"
        raise ValueError(f"{option} {redact(url)!r}: a query string or fragment cannot be sent with each request; "
                         "give the key with --api-key-env (the name of the variable that holds it)")  # fmt: skip
    return url.rstrip("/")


def import_openai():
    return require("openai")


class ReplyError(Exception):
    """A request that failed after its retries, or a reply that is not what the endpoint promises.
    The message is redacted; ``body`` is the (redacted, shortened) reply body when there was one."""

    def __init__(self, message: str, body: str | None = None):
        super().__init__(message)
        self.body = body


@dataclass
class Result:
    """One request's outcome: the reply (a JSON object) or ``error``; ``text`` keeps a failed reply's body."""

    json: dict[str, Any] | None = None
    text: str | None = None
    error: str | None = None
    attempts: int = 0


_COUNTS = ("prompt_tokens", "completion_tokens", "total_tokens")


def first_choice(reply: dict[str, Any]) -> dict[str, Any]:
    """``choices[0]`` of a chat or text completion, checked: ``text`` (message content or completion text,
    "" when null), ``reasoning`` (``reasoning_content``/``reasoning``, or None), ``finish_reason``,
    ``stop_reason``, ``usage`` (a dict) and the raw ``choice``. Anything else raises ReplyError."""
    choices = reply.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise ReplyError("malformed reply: no choices[0] object")
    choice = choices[0]
    if "message" in choice:
        msg = choice["message"]
        if not isinstance(msg, dict):
            raise ReplyError("malformed reply: choices[0].message is not an object")
        text, reasoning = msg.get("content"), msg.get("reasoning_content") or msg.get("reasoning")
        if text is None and isinstance(msg.get("refusal"), str):  # OpenAI's structured refusal is the answer
            text = msg["refusal"]
    else:
        text, reasoning = choice.get("text"), None
    if not isinstance(text, str | None) or not isinstance(reasoning, str | None):
        raise ReplyError("malformed reply: the completion text is not a string")
    for t in (text, reasoning):
        try:
            (t or "").encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate escape ("\ud83d") is valid JSON but no text to keep
            raise ReplyError("malformed reply: the completion text is not valid Unicode (a lone surrogate)") from None
    usage = reply.get("usage") or {}
    if not isinstance(usage, dict) or not all(
        usage.get(k) is None or (type(usage[k]) is int and 0 <= usage[k] < 2**63) for k in _COUNTS
    ):
        raise ReplyError("malformed reply: usage is not an object of token counts")
    finish = choice.get("finish_reason")
    return {"text": text or "", "reasoning": reasoning or None, "finish_reason": finish if isinstance(finish, str) else None,
            "stop_reason": choice.get("stop_reason"), "usage": usage, "choice": choice}  # fmt: skip


class Endpoint:
    """An OpenAI-compatible server. ``timeout``: seconds one attempt may take in all (connect to last
    byte); ``max_retries``: further attempts after a retryable failure (so at most max_retries + 1).
    ``key_required``: a missing ``api_key_env`` variable is an error (else no key is sent)."""

    def __init__(self, base_url: str | None, *, api_key_env: str | None = None, key_required: bool = True,
                 timeout: float = 600.0, max_retries: int = 6, option: str = "--api-base"):  # fmt: skip
        openai = import_openai()
        self.base_url = check_base_url(base_url, option)
        if not (0 < timeout < float("inf")) or max_retries < 0:
            raise ValueError("the request timeout must be > 0 and max retries >= 0")
        key = os.environ.get(api_key_env) if api_key_env else None
        if api_key_env and not key and key_required:
            raise ValueError(f"environment variable {api_key_env} (the API key's variable) is not set")
        url = urlsplit(self.base_url)
        self.secrets = [s for s in (key, url.password, url.username) if s]
        self._openai = openai
        self._tls = threading.local()
        httpx = _httpx_module(openai)
        transport = _deadline_transport(httpx, timeout, self._tls)
        self.client = openai.OpenAI(
            base_url=self.base_url, api_key=key or "unused", max_retries=max_retries, timeout=timeout,
            http_client=openai.DefaultHttpxClient(transport=transport, timeout=timeout),
        )  # fmt: skip
        self.timeout, self.max_retries = timeout, max_retries
        self._headers = None if key else {"Authorization": openai.Omit()}  # no key: no header at all

    def redact(self, text: str) -> str:
        return redact(text, self.secrets)

    @property
    def url(self) -> str:
        """The base URL as it may be written down (credentials redacted)."""
        return self.redact(self.base_url)

    def create(self, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """POST one chat completion (``body`` has ``messages``) or text completion (``prompt``); fields the
        SDK does not know (vLLM's top_k, chat_template_kwargs, ...) go through as they are. Returns the
        reply (a JSON object) and the number of attempts; raises ReplyError (redacted)."""
        openai = self._openai
        rest = {k: v for k, v in body.items() if k not in ("model", "messages", "prompt")}
        self._tls.attempts = 0
        try:
            if "messages" in body:
                raw = self.client.chat.completions.with_raw_response.create(model=body["model"], messages=body["messages"],
                                                                           extra_body=rest, extra_headers=self._headers)
            else:
                raw = self.client.completions.with_raw_response.create(model=body["model"], prompt=body["prompt"],
                                                                     extra_body=rest, extra_headers=self._headers)
            text = raw.text
        except openai.APIStatusError as e:
            body_text = self.redact(_safe_text(e.response)[:2000])
            raise ReplyError(f"HTTP {e.status_code}: {_echo_cut(_message(body_text), body)}" + self._after(), body_text) from None
        except openai.APITimeoutError:
            raise ReplyError(f"timed out: {self.timeout:g} s per attempt" + self._after()) from None
        except openai.APIConnectionError as e:
            raise ReplyError(self.redact(f"connection failed: {e.__cause__ or e}") + self._after()) from None
        except openai.OpenAIError as e:
            raise ReplyError(self.redact(f"{type(e).__name__}: {e}") + self._after()) from None
        attempts = max(1, self._tls.attempts)
        try:
            reply = json.loads(text)
        except ValueError:
            raise ReplyError("malformed reply: not JSON", self.redact(text[:2000])) from None
        if not isinstance(reply, dict):
            raise ReplyError("malformed reply: not a JSON object", self.redact(text[:2000]))
        return reply, attempts

    def _after(self) -> str:
        n = max(1, self._tls.attempts)
        return f" (after {n} attempt{'s' if n > 1 else ''})"

    def result(self, body: dict[str, Any]) -> Result:
        try:
            reply, attempts = self.create(body)
            return Result(json=reply, attempts=attempts)
        except ReplyError as e:
            return Result(error=str(e), text=e.body, attempts=max(1, self._tls.attempts))

    def map(self, bodies: list[dict[str, Any]], concurrency: int = 8) -> list[Result]:
        """All requests, ``concurrency`` at a time, results in order; a failure is a Result with ``error``."""
        if len(bodies) <= 1 or concurrency <= 1:
            return [self.result(b) for b in bodies]
        with ThreadPoolExecutor(max_workers=min(concurrency, len(bodies))) as pool:
            return list(pool.map(self.result, bodies))

    def close(self) -> None:
        self.client.close()


def _message(body_text: str) -> str:
    """The server's own error message (``error.message`` of a JSON error body, else the body), on one line."""
    try:
        err = json.loads(body_text).get("error")
        msg = err.get("message") if isinstance(err, dict) else err
        body_text = msg if isinstance(msg, str) and msg else body_text
    except (ValueError, AttributeError):
        pass
    return " ".join(body_text.split())


_QUOTED = re.compile(r"""("|')(?:\\.|(?!\1).){40,}?\1""")


def _echo_cut(message: str, body: dict[str, Any], limit: int = 300, window: int = 16) -> str:
    """``message`` without the request's texts: servers echo the request in errors (vLLM puts up to 200 characters
    of it in a validation error), and a warning on stderr must not carry a prompt. Every passage that shares
    ``window`` characters or more with a text the request sent (a message, a prompt; whitespace normalised) and
    every quoted string of 40 characters or more become ``…``. The whole (redacted) body stays in
    ``ReplyError.body``, which a judge keeps in its error verdict."""
    texts = [m.get("content") for m in body.get("messages") or [] if isinstance(m, dict)] + [body.get("prompt")]
    grams: set[str] = set()
    for t in texts:
        for part in t if isinstance(t, list) else [t]:
            part = part.get("text") if isinstance(part, dict) else part
            if isinstance(part, str):
                part = " ".join(part.split())
                grams.update(part[i : i + window] for i in range(len(part) - window + 1))
    message = " ".join(message.split())
    covered = [False] * len(message)
    for i in range(len(message) - window + 1):
        if message[i : i + window] in grams:
            covered[i : i + window] = [True] * window
    out, i = [], 0
    while i < len(message):
        if covered[i]:
            while i < len(message) and covered[i]:
                i += 1
            out.append("…")
        else:
            out.append(message[i])
            i += 1
    message = _QUOTED.sub(r"\1…\1", "".join(out))
    return message if len(message) <= limit else message[:limit] + "…"


def _safe_text(response) -> str:
    try:
        return response.text
    except Exception:  # a body that cannot be read or decoded is no evidence worth a crash
        return ""


def _httpx_module(openai):
    """The HTTP library this SDK version is built on (httpx for openai 1.x, httpx2 later)."""
    for cls in openai.DefaultHttpxClient.__mro__:
        mod = sys.modules.get(cls.__module__.split(".")[0])
        if mod is not None and mod.__name__ != "openai" and hasattr(mod, "HTTPTransport"):
            return mod
    raise ValueError(f"unsupported openai SDK version {openai.__version__}")


def _deadline_transport(httpx, timeout: float, tls: threading.local):
    """The default transport, counting attempts per thread and cutting each response off ``timeout``
    seconds after its request started (a trickling server raises ReadTimeout, which the SDK retries)."""

    class DeadlineStream(httpx.SyncByteStream):
        def __init__(self, stream, deadline: float):
            self.stream, self.deadline = stream, deadline

        def __iter__(self):
            for chunk in self.stream:
                if time.monotonic() > self.deadline:
                    raise httpx.ReadTimeout(f"no complete reply within {timeout:g} s")
                yield chunk

        def close(self) -> None:
            self.stream.close()

    class DeadlineTransport(httpx.HTTPTransport):
        def handle_request(self, request):
            tls.attempts = getattr(tls, "attempts", 0) + 1
            deadline = time.monotonic() + timeout
            response = super().handle_request(request)
            if time.monotonic() > deadline:
                response.close()
                raise httpx.ReadTimeout(f"no reply within {timeout:g} s", request=request)
            return httpx.Response(response.status_code, headers=response.headers, extensions=response.extensions,
                                  stream=DeadlineStream(response.stream, deadline))  # fmt: skip

    return DeadlineTransport()
