"""promptfoo results: ``promptfoo eval -o results.json`` (``{evalId, results: {version, results: [...]}}``) or
``-o results.jsonl`` (one result per line). Each result is one trace: the provider (its label, else its id) is
the model, ``prompt.raw`` the prompt as sent, ``response.output`` the output. ``--category-field`` etc. look in
the test's ``vars`` and ``metadata`` (red-team results carry ``pluginId``/``harmCategory`` there).

promptfoo folds thinking into the output text: ``Thinking: R\\n\\nANSWER`` (OpenAI-compatible ``reasoning`` /
DeepSeek ``reasoning_content``) and ``Thinking: R\\nSignature: S\\n\\nANSWER`` or ``Redacted Thinking: DATA\\n\\n…``
(Anthropic). The Anthropic forms and an OpenAI form with a single blank line split exactly; an OpenAI form whose
thinking or answer has blank lines of its own cannot be told apart, so the whole output is kept as the answer and
marked ``thinking_boundary: "ambiguous"`` (run with the provider's ``showThinking: false`` to keep answers only).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from ..store import read_jsonl_numbered
from ._base import IMPORTERS, Bad, Importer, ImportOptions, Item, JsonDocument

log = logging.getLogger(__name__)

THINKING, REDACTED = "Thinking: ", "Redacted Thinking: "
KEPT = ("testIdx", "promptIdx", "success", "score", "namedScores")  # promptfoo's grading, kept under "promptfoo"
_SIGNED = re.compile(r"\nSignature: [^\n]*(?:\n\n|\Z)")


def read(path: Path, opts: ImportOptions) -> Iterator[Item | Bad]:
    if path.suffix == ".jsonl":
        results = read_jsonl_numbered(path, on_bad_line=opts.on_bad_line)
    else:
        results = JsonDocument(path).items(("results", "results"))
    no_output = ambiguous = 0
    for lineno, result in results:
        where = f"{path}:{lineno}"
        if not isinstance(result, dict) or not isinstance(result.get("provider"), (dict, str)):
            yield Bad(where, "not a promptfoo result (no 'provider')")
            continue
        response = result.get("response")
        output = response.get("output") if isinstance(response, dict) else None
        if output is None:  # the provider call failed: there is no generation
            no_output += 1
            continue
        if not isinstance(output, str):  # structured output, tool calls
            output = orjson.dumps(output).decode()
        reasoning, answer, boundary = split_thinking(output)
        ambiguous += boundary == "ambiguous"
        provider = result["provider"]
        model = provider if isinstance(provider, str) else str(provider.get("label") or provider.get("id") or "")
        prompt = result.get("prompt")
        test = result.get("testCase") if isinstance(result.get("testCase"), dict) else {}
        vars_ = next((v for v in (result.get("vars"), test.get("vars")) if isinstance(v, dict)), {})
        metadata = test.get("metadata") if isinstance(test.get("metadata"), dict) else {}
        usage = response.get("tokenUsage") if isinstance(response.get("tokenUsage"), dict) else {}
        details = usage.get("completionDetails") if isinstance(usage.get("completionDetails"), dict) else {}
        n_tokens = {"prompt": _count(usage.get("prompt")), "completion": _count(usage.get("completion"))}
        if _count(details.get("reasoning")) is not None:
            n_tokens["reasoning"] = details["reasoning"]
        extra: dict[str, Any] = {"promptfoo": {k: result.get(k) for k in KEPT}}
        if boundary:
            extra["thinking_boundary" if boundary == "ambiguous" else "reasoning_redacted"] = boundary
        yield Item(
            where=where,
            fields={**result, **metadata, **vars_},
            raw=answer,
            reasoning=reasoning,
            model=model,
            prompt=prompt.get("raw") if isinstance(prompt, dict) else prompt,
            fallback_id=f"{path.stem}-{lineno}",
            finish_reason=response.get("finishReason") if isinstance(response.get("finishReason"), str) else None,
            n_tokens=n_tokens,
            extra=extra,
        )
    if no_output:
        log.warning("%s: %d result(s) have no output (provider errors), none imported", path, no_output)
    if ambiguous:
        log.warning("%s: %d output(s) start with promptfoo's 'Thinking: ' but where the thinking ends is ambiguous; "
                    "kept whole as the answer (thinking_boundary: ambiguous)", path, ambiguous)


def split_thinking(output: str) -> tuple[str | None, str, str | None]:
    """(thinking, answer, note) of an output in which promptfoo prefixed the thinking; note is ``"ambiguous"``
    (boundary unknown, output kept whole), ``"hidden"`` (Anthropic redacted thinking) or None."""
    if output.startswith(REDACTED):
        _, _, answer = output.partition("\n\n")  # the redacted data is base64: no blank line inside
        return None, answer, "hidden"
    if not output.startswith(THINKING):
        return None, output, None
    rest = output[len(THINKING) :]
    signed = _SIGNED.search(rest)
    if signed:
        return rest[: signed.start()], rest[signed.end() :], None
    breaks = rest.count("\n\n")
    if breaks == 0:  # promptfoo always adds the blank line: this is the model's own text
        return None, output, None
    if breaks == 1:
        thinking, answer = rest.split("\n\n")
        return thinking, answer, None
    return None, output, "ambiguous"


def _count(n: Any) -> int | None:
    """A token count as promptfoo writes it (an integer), else None: a provider's odd usage is no reason to fail."""
    return n if isinstance(n, int) and not isinstance(n, bool) else None


IMPORTERS.add("promptfoo", Importer(read, "promptfoo eval -o results.json / .jsonl"))
