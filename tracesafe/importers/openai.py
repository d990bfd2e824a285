"""One OpenAI chat-completion response per line, or the Batch API output wrapper
``{custom_id, response: {body: <completion>}}``. Each choice is one sample: ``message.content`` with
``reasoning_content`` (DeepSeek's API, older vLLM) or ``reasoning`` (newer vLLM) as the thinking. The prompt, if
known, is read from ``--prompt-field`` on the line; the prompt id is ``custom_id`` (or ``--id-field``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..store import read_jsonl_numbered
from ._base import IMPORTERS, Bad, Importer, ImportOptions, Item


def read(path: Path, opts: ImportOptions) -> Iterator[Item | Bad]:
    for lineno, obj in read_jsonl_numbered(path, on_bad_line=opts.on_bad_line):
        where = f"{path}:{lineno}"
        items = _line(obj, where, f"{path.stem}-{lineno}")
        if isinstance(items, Bad):
            yield items
        else:
            yield from items


def _line(obj: dict[str, Any], where: str, fallback_id: str) -> list[Item] | Bad:
    body = obj
    if "custom_id" in obj or isinstance(obj.get("response"), dict):  # Batch API output line
        response = obj["response"]
        if not isinstance(response, dict) or not isinstance(response.get("body"), dict):
            error = obj.get("error")
            return Bad(where, "Batch API line without a response body" + (f" (error: {error})" if error else ""))
        body = response["body"]
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices:
        error = body.get("error") or obj.get("error")
        return Bad(where, "no choices in chat completion" + (f" (error: {error})" if error else ""))
    usage = body.get("usage")
    if usage is not None and not isinstance(usage, dict):
        return Bad(where, f"usage is a {type(usage).__name__}, expected an object")
    usage = usage or {}
    items = []
    for i, choice in enumerate(choices):
        msg = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(msg, dict):
            return Bad(where, f"choice {i} has no message object")
        content, reasoning = msg.get("content"), msg.get("reasoning_content") or msg.get("reasoning")
        if content is None and not reasoning:
            return Bad(where, f"choice {i} has no message content")
        if not isinstance(content, (str, type(None))):
            return Bad(where, f"choice {i}: message content is a {type(content).__name__}, expected a string")
        items.append(
            Item(
                where=f"{where}: choice {i}" if len(choices) > 1 else where,
                fields=obj,
                raw=content or "",
                model=body.get("model") or "",
                prompt_id=obj.get("custom_id"),
                fallback_id=str(body.get("id") or fallback_id),
                reasoning=reasoning,
                finish_reason=choice.get("finish_reason"),
                n_tokens={"prompt": usage.get("prompt_tokens"), "completion": usage.get("completion_tokens")},
            )
        )
    return items


IMPORTERS.add("openai", Importer(read, "chat.completion objects or Batch API output lines"))
