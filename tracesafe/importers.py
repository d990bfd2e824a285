"""Import traces made elsewhere as Trace records, split on the fly.

Formats:
- ``jsonl`` / ``csv``: one trace per line/row; ``--prompt-field``, ``--response-field`` (default the first
  of response/output/completion/raw), ``--reasoning-field`` (default reasoning_content/reasoning if present).
- ``openai``: one OpenAI chat-completion response per line (``choices[i].message.content`` plus
  ``reasoning_content`` as DeepSeek's API and older vLLM servers return it, or ``reasoning`` as newer
  vLLM servers do), or the Batch API output wrapper ``{custom_id, response: {body: <completion>}}``.
  Each choice becomes one sample. The prompt, if known, is read from ``--prompt-field`` on the line.
- ``safechain``: SafeChain's result JSON (uw-nsl/safechain ``resp_gen.py``): ``{meta_info, data: [{instruction,
  prompt, response: [...], thoughts?: [...], solution?: [...]}]}``; ``prompt`` is the rendered prompt.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from .records import Trace, stable_id, trace_id
from .split import split_record
from .store import read_csv_numbered, read_jsonl_numbered, write_jsonl

RESPONSE_FIELDS = ("response", "output", "completion", "raw")
REASONING_FIELDS = ("reasoning_content", "reasoning")
PROMPT_FIELDS = ("prompt", "instruction", "question", "text")


def _pick(row: dict[str, Any], explicit: str | None, candidates: tuple[str, ...], where: str, what: str) -> str | None:
    if explicit:
        if explicit not in row:
            raise ValueError(f"{where}: no field {explicit!r} ({what}); fields: {', '.join(map(str, row))}")
        return explicit
    return next((f for f in candidates if f in row), None)


def _prompt_id(prompt: str | None, explicit: Any, fallback: str) -> str:
    if explicit not in (None, ""):
        return str(explicit)
    if prompt:
        return "p-" + stable_id(prompt, n=12)
    return fallback


def _trace(model: str, backend: str, prompt_id: str, sample: int, raw: str, **kw: Any) -> dict[str, Any]:
    params = kw.pop("params", {})
    rec = Trace(
        id=trace_id(model, prompt_id, sample, params),
        prompt_id=prompt_id,
        raw=raw,
        model=model,
        backend=backend,
        sample=sample,
        params=params,
        **kw,
    ).to_dict()
    return split_record(rec)


def _generic_rows(path: Path, fmt: str, on_bad_line: str) -> Iterator[tuple[int, dict[str, Any]]]:
    if fmt == "csv":
        yield from read_csv_numbered(path)
    else:
        yield from read_jsonl_numbered(path, on_bad_line=on_bad_line)


def _import_generic(path: Path, fmt: str, *, model: str, prompt_field, response_field, reasoning_field, id_field, on_bad_line):
    samples: dict[str, int] = {}
    for lineno, row in _generic_rows(path, fmt, on_bad_line):
        where = f"{path}:{lineno}"
        rf = _pick(row, response_field, RESPONSE_FIELDS, where, "response")
        if rf is None or not isinstance(row[rf], str):
            raise ValueError(f"{where}: no response text (use --response-field; fields: {', '.join(map(str, row))})")
        pf = _pick(row, prompt_field, PROMPT_FIELDS, where, "prompt")
        zf = _pick(row, reasoning_field, REASONING_FIELDS, where, "reasoning")
        prompt = row.get(pf) if pf else None
        pid = _prompt_id(prompt, row.get(id_field) if id_field else None, f"{path.stem}-{lineno}")
        sample = samples.get(pid, 0)
        samples[pid] = sample + 1
        used = {rf, pf, zf, id_field}
        rec = _trace(
            model or str(row.get("model") or ""),
            f"import:{fmt}",
            pid,
            sample,
            row[rf],
            prompt=prompt,
            reasoning=(row.get(zf) or None) if zf else None,
            prompt_rendered=row.get("prompt_rendered"),
        )
        for k, v in row.items():
            if k not in used and k not in rec:
                rec[k] = v
        yield rec


def _import_openai(path: Path, *, model: str, prompt_field, id_field, on_bad_line, **_):
    for lineno, obj in _generic_rows(path, "jsonl", on_bad_line):
        where = f"{path}:{lineno}"
        body = obj
        custom_id = obj.get("custom_id")
        if "response" in obj and isinstance(obj["response"], dict):  # Batch API output line
            body = obj["response"].get("body") or {}
        choices = body.get("choices")
        if not isinstance(choices, list) or not choices:
            err = (obj.get("error") or body.get("error")) if isinstance(body, dict) else None
            raise ValueError(f"{where}: no choices in chat completion" + (f" (error: {err})" if err else ""))
        prompt = obj.get(prompt_field) if prompt_field else None
        pid = _prompt_id(prompt, obj.get(id_field) if id_field else custom_id, body.get("id") or f"{path.stem}-{lineno}")
        for i, choice in enumerate(choices):
            msg = choice.get("message") or {}
            content = msg.get("content")
            if content is None and not (msg.get("reasoning_content") or msg.get("reasoning")):
                raise ValueError(f"{where}: choice {i} has no message content")
            usage = body.get("usage") or {}
            yield _trace(
                model or body.get("model") or "",
                "import:openai",
                pid,
                int(choice.get("index", i)),
                content or "",
                prompt=prompt,
                reasoning=msg.get("reasoning_content") or msg.get("reasoning") or None,
                finish_reason=choice.get("finish_reason"),
                n_tokens={"prompt": usage.get("prompt_tokens"), "completion": usage.get("completion_tokens")},
            )


def _import_safechain(path: Path, *, model: str, **_):
    try:
        doc = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as e:
        raise ValueError(f"{path}: not a JSON document: {e}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise ValueError(f"{path}: expected SafeChain result JSON with a 'data' list")
    meta = doc.get("meta_info") or {}
    model = model or str(meta.get("model") or "")
    # SafeChain's CLI arguments; the ones that are sampling params are recorded as such.
    params = {k: meta[k] for k in ("temperature", "topp", "topk", "max_tokens", "repeat_n", "prompt") if k in meta}
    for i, item in enumerate(doc["data"]):
        where = f"{path}: data[{i}]"
        if not isinstance(item, dict) or "instruction" not in item or not isinstance(item.get("response"), list):
            raise ValueError(f"{where}: needs 'instruction' and a 'response' list")
        inst = item["instruction"]
        rendered = item.get("prompt") if isinstance(item.get("prompt"), str) else None
        pid = _prompt_id(inst, None, f"safechain-{i}")
        thoughts, solutions = item.get("thoughts"), item.get("solution")
        for s, resp in enumerate(item["response"]):
            if thoughts is not None and solutions is not None:
                raw, reasoning = solutions[s], thoughts[s]  # API runs kept both fields separately
            else:
                raw, reasoning = resp, None
            yield _trace(
                model, "import:safechain", pid, s, raw, prompt=inst, reasoning=reasoning, prompt_rendered=rendered, params=params
            )


def import_file(
    fmt: str,
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    model: str = "",
    prompt_field: str | None = None,
    response_field: str | None = None,
    reasoning_field: str | None = None,
    id_field: str | None = None,
    on_bad_line: str = "error",
) -> int:
    """Convert ``src`` in format ``fmt`` into split Trace records at ``dst`` (atomically). Returns the count."""
    src = Path(src)
    kw = dict(
        model=model,
        prompt_field=prompt_field,
        response_field=response_field,
        reasoning_field=reasoning_field,
        id_field=id_field,
        on_bad_line=on_bad_line,
    )
    if fmt in ("jsonl", "csv"):
        records = _import_generic(src, fmt, **kw)
    elif fmt == "openai":
        records = _import_openai(src, **kw)
    elif fmt == "safechain":
        records = _import_safechain(src, **kw)
    else:
        raise ValueError(f"unknown import format {fmt!r} (jsonl, csv, openai, safechain)")
    return write_jsonl(dst, records, inputs=[src])


