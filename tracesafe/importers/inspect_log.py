"""inspect_ai eval logs, ``.eval`` (a zip of JSON files) or ``.json``.

Read with ``inspect_ai.log`` when it is installed (it migrates old log versions and resolves attachments);
without it, ``.json`` logs and deflate-compressed ``.eval`` logs are read directly (newer ``.eval`` logs are
zstd-compressed, which needs inspect_ai). Each choice of a sample's final ``output`` is one trace: its text
blocks are the answer, its ``ContentReasoning`` blocks the thinking. A redacted block (encrypted reasoning)
contributes its readable ``summary`` when there is one (``reasoning_redacted: "summary"``), else nothing
(``reasoning_redacted: "hidden"``). The prompt id is ``TASK/SAMPLE_ID``, the sample number counts epochs;
``--category-field`` etc. look in the sample's ``metadata`` (or a dotted path from the sample).
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from ..records import json_type
from ._base import IMPORTERS, Bad, Importer, ImportOptions, Item, JsonDocument, text_of

_HEAVY = {"events", "store", "attachments", "events_data", "timelines"}
ATTACHMENT = "attachment://"

log = logging.getLogger(__name__)


def read(path: Path, opts: ImportOptions) -> Iterator[Item | Bad]:
    if path.suffix not in (".eval", ".json"):
        raise ValueError(f"{path}: an inspect log ends in .eval or .json")
    try:
        import inspect_ai.log  # noqa: F401
    except ImportError:
        header, samples = _read_plain(path)
    else:
        header, samples = _read_with_inspect(path)
    skipped, seen = 0, set()
    for where, sample in samples:
        key = (str(sample["id"]), sample.get("epoch")) if isinstance(sample, dict) and "id" in sample else None
        if key is not None and key in seen:  # its traces would take the ids of the first sample's
            yield Bad(where, f"sample id {key[0]!r} (epoch {key[1]}) appears twice in the log")
            continue
        seen.add(key)
        items = _items(where, header, sample)
        if items is None:
            skipped += 1
        else:
            yield from items
    if skipped:
        log.warning("%s: %d sample(s) have no output (sample errors or limits), none imported", path, skipped)


def _read_with_inspect(path: Path) -> tuple[dict[str, Any], Iterator[tuple[str, dict[str, Any]]]]:
    from inspect_ai.log import read_eval_log, read_eval_log_samples

    stream = path.suffix == ".eval"  # one sample in memory at a time; a .json log is one document anyway
    try:
        log = read_eval_log(str(path), header_only=stream, resolve_attachments=True)
    except Exception as e:  # inspect raises zip, JSON and pydantic errors alike for a file that is no log
        raise ValueError(f"{path}: not an inspect log: {_first_line(e)}") from None
    header = log.eval.model_dump(mode="json", exclude_none=True)

    def samples() -> Iterator[tuple[str, dict[str, Any]]]:
        if stream and log.eval.dataset.sample_ids is not None:
            source = read_eval_log_samples(
                str(path), all_samples_required=False, resolve_attachments=True, exclude_fields=_HEAVY
            )
        else:
            source = (log if not stream else read_eval_log(str(path), resolve_attachments=True)).samples or []
        try:
            for s in source:
                sample = s.model_dump(mode="json", exclude=_HEAVY, exclude_none=True)
                yield f"{path}: sample {s.id} epoch {s.epoch}", sample
        except Exception as e:  # a sample inspect cannot read: the log is damaged
            raise ValueError(f"{path}: unreadable sample: {_first_line(e)}") from None

    return header, samples()


def _read_plain(path: Path) -> tuple[dict[str, Any], Iterator[tuple[str, dict[str, Any]]]]:
    if path.suffix == ".json":
        doc = JsonDocument(path)
        header = doc.value(("eval",), kind=dict)
        if header is None:
            raise ValueError(f"{path}: not an inspect log (no 'eval' object)")
        return header, ((f"{path}:{line}", _resolved(s)) for line, s in doc.items(("samples",)))
    try:
        archive = zipfile.ZipFile(path)
        # header.json is written when the run ends; a log of a run still going (or killed) has only the journal
        name = "header.json" if "header.json" in archive.namelist() else "_journal/start.json"
        header = orjson.loads(archive.read(name))["eval"]
    except NotImplementedError:
        raise ValueError(f"{path}: this .eval log is zstd-compressed; reading it needs `pip install inspect-ai`") from None
    except (zipfile.BadZipFile, KeyError, orjson.JSONDecodeError, TypeError) as e:
        raise ValueError(f"{path}: not an inspect .eval log: {e}") from None

    def samples() -> Iterator[tuple[str, dict[str, Any]]]:
        for name in archive.namelist():
            if name.startswith("samples/") and name.endswith(".json"):
                try:
                    sample = orjson.loads(archive.read(name))
                except (orjson.JSONDecodeError, zipfile.BadZipFile, NotImplementedError) as e:
                    raise ValueError(f"{path}: {name}: unreadable sample: {e}") from None
                yield f"{path}: {name}", _resolved(sample)

    return header, samples()


def _resolved(sample: Any) -> Any:
    """Replace ``attachment://HASH`` strings (inspect moves long repeated content there) by their text."""
    if not isinstance(sample, dict) or not isinstance(sample.get("attachments"), dict) or not sample["attachments"]:
        return sample
    attachments = sample["attachments"]

    def walk(v: Any) -> Any:
        if isinstance(v, str) and v.startswith(ATTACHMENT):
            return attachments.get(v[len(ATTACHMENT) :], v)
        if isinstance(v, list):
            return [walk(x) for x in v]
        if isinstance(v, dict):
            return {k: walk(x) for k, x in v.items()}
        return v

    return {k: v if k in _HEAVY else walk(v) for k, v in sample.items()}


def _items(where: str, header: dict[str, Any], sample: Any) -> list[Item | Bad] | None:
    if not isinstance(sample, dict) or "id" not in sample:
        return [Bad(where, "not an inspect sample (no 'id')")]
    output = sample.get("output") or {}
    choices = output.get("choices") if isinstance(output, dict) else None
    if not choices:
        return None
    # Objects the reader looks into: a log edited or written by another tool may hold anything there.
    for name, v in (("output.choices", choices), ("output.usage", output.get("usage")), ("scores", sample.get("scores")),
                    ("epoch", sample.get("epoch"))):  # fmt: skip
        want = list if name == "output.choices" else int if name == "epoch" else dict
        if v is not None and (not isinstance(v, want) or isinstance(v, bool)):
            return [Bad(where, f"{name} is {json_type(v, article=True)}, expected {json_type(want(), article=True)}")]
    metadata = sample.get("metadata") if isinstance(sample.get("metadata"), dict) else {}
    fields = {**sample, **metadata}
    usage = output.get("usage") or {}
    n_tokens = {"prompt": usage.get("input_tokens"), "completion": usage.get("output_tokens")}
    if usage.get("reasoning_tokens") is not None:
        n_tokens["reasoning"] = usage["reasoning_tokens"]
    scores = sample.get("scores") or {}
    inspect_info = {
        "task": header.get("task"),
        "eval_id": header.get("eval_id"),
        "sample_id": sample["id"],
        "epoch": sample.get("epoch"),
        "target": sample.get("target"),
        "scores": {k: v.get("value") if isinstance(v, dict) else v for k, v in scores.items()},
    }
    epoch = sample.get("epoch") or 1
    items: list[Item | Bad] = []
    for i, choice in enumerate(choices):
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            items.append(Bad(where, f"choice {i} has no message"))
            continue
        answer, thinking, redacted = _content(message.get("content"))
        if answer is None:
            items.append(Bad(where, f"choice {i}: message content is neither text nor content blocks"))
            continue
        extra: dict[str, Any] = {"inspect": inspect_info}
        if redacted:
            extra["reasoning_redacted"] = redacted
        items.append(
            Item(
                where=where,
                fields=fields,
                raw=answer,
                reasoning=thinking,
                model=header.get("model") or output.get("model") or "",
                prompt=_prompt(sample.get("input")),
                prompt_id=f"{header.get('task')}/{sample['id']}",
                sample=(epoch - 1) * len(choices) + i,
                params=header.get("model_generate_config") or {},
                finish_reason=choice.get("stop_reason"),
                n_tokens=n_tokens,
                extra=extra,
            )
        )
    return items


def _content(content: Any) -> tuple[str | None, str | None, str | None]:
    """(answer text, thinking text, redaction) of a message content: a string or a list of content blocks."""
    if isinstance(content, str):
        return content, None, None
    if not isinstance(content, list):
        return None, None, None
    answer = text_of(content)
    thoughts: list[str] = []
    redacted = None
    for block in content:
        if not isinstance(block, dict) or block.get("type") != "reasoning":
            continue
        if not block.get("redacted"):
            thoughts.append(block.get("reasoning") or "")
        elif block.get("summary"):
            thoughts.append(block["summary"])
            redacted = redacted or "summary"
        else:
            redacted = "hidden"
    return answer, "\n\n".join(t for t in thoughts if t) or None, redacted


def _prompt(input: Any) -> str | None:
    """The sample input: a string, or the text of the last user message."""
    if isinstance(input, str):
        return input
    if isinstance(input, list):
        for message in reversed(input):
            if isinstance(message, dict) and message.get("role") == "user":
                return text_of(message.get("content"))
    return None


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


IMPORTERS.add("inspect", Importer(read, "inspect_ai eval log (.eval or .json)"))
