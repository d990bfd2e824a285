"""lm-evaluation-harness per-sample logs: ``samples_TASK_DATE.jsonl`` written with ``--log_samples``.

Each line is one dataset document: ``doc``, ``arguments`` (``gen_args_N: {arg_0: context, arg_1: gen_kwargs}``),
``resps`` (one list of generations per request; several with ``repeats``), ``filtered_resps``, ``filter`` and
the metrics. Every generation in ``resps`` (the unfiltered text, thinking included) is one trace; a document
logged again under another filter (``strict-match``/``flexible-extract``) is the same generation and is
imported once. ``arg_0``, the context as the model saw it, is recorded as ``prompt_rendered``; the prompt is
``--prompt-field`` (looked up in the line, e.g. ``doc.question``), else the first of prompt/instruction/
question/text in ``doc``, else the context. The model name comes from the ``results_DATE.json`` next to the file.
Tasks scored by log-likelihood have no generated text and are refused. lm-eval's ``think_end_token`` option
deletes the thinking before logging: run without it to keep the thinking.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from .._util.fields import PROMPT_FIELDS
from ..store import read_jsonl_numbered
from ._base import IMPORTERS, Bad, Importer, ImportOptions, Item

_NAME = re.compile(r"samples_(?P<task>.+)_(?P<date>\d{4}-\d{2}-\d{2}T[\d.\-]+)\.jsonl$")


def read(path: Path, opts: ImportOptions) -> Iterator[Item | Bad]:
    m = _NAME.match(path.name)
    task = m["task"] if m else path.stem
    model = _model_name(path.parent / f"results_{m['date']}.json") if m else ""
    seen: set[Any] = set()
    for lineno, line in read_jsonl_numbered(path, on_bad_line=opts.on_bad_line):
        where = f"{path}:{lineno}"
        doc_id, resps, doc = line.get("doc_id"), line.get("resps"), line.get("doc")
        if isinstance(doc_id, bool) or not isinstance(doc_id, (int, str)) or not isinstance(resps, list):
            yield Bad(where, "not an lm-eval sample (needs a number or string 'doc_id' and a 'resps' list)")
            continue
        metrics = line.get("metrics") or []
        if not isinstance(metrics, list) or not all(isinstance(k, str) for k in metrics):
            yield Bad(where, f"'metrics' is not a list of metric names: {metrics!r}"[:200])
            continue
        if doc_id in seen:  # the same document under another filter
            continue
        seen.add(doc_id)
        if not all(isinstance(r, list) and all(isinstance(x, str) for x in r) for r in resps):
            yield Bad(where, "resps are not generated texts (a log-likelihood task has no generations to import)")
            continue
        requests = _requests(line.get("arguments"))
        doc = doc if isinstance(doc, dict) else {}
        prompt_key = next((f for f in PROMPT_FIELDS if isinstance(doc.get(f), str)), None)
        extra = {"lm_eval": {"task": task, "doc_id": doc_id, "target": line.get("target"),
                             "metrics": {k: line[k] for k in metrics if k in line}}}  # fmt: skip
        n = 0
        for r, generations in enumerate(resps):
            context, gen_kwargs = requests[r] if r < len(requests) else (None, {})
            for text in generations:
                yield Item(
                    where=where,
                    fields=line,
                    raw=text,
                    model=model,
                    prompt=doc[prompt_key] if prompt_key else context,
                    prompt_id=f"{task}/{doc_id}",
                    prompt_rendered=context,
                    sample=n,
                    params=gen_kwargs,
                    extra=extra,
                )
                n += 1


def _requests(arguments: Any) -> list[tuple[Any, dict[str, Any]]]:
    """(context, gen_kwargs) per request; lm-eval writes ``{gen_args_0: {arg_0, arg_1}}`` (older: ``[[ctx, kw]]``)."""
    if isinstance(arguments, dict):
        arguments = [[a.get("arg_0"), a.get("arg_1")] if isinstance(a, dict) else a for a in arguments.values()]
    out = []
    for a in arguments if isinstance(arguments, list) else []:
        context = a[0] if isinstance(a, list) and a and isinstance(a[0], str) else None
        kwargs = a[1] if isinstance(a, list) and len(a) > 1 and isinstance(a[1], dict) else {}
        out.append((context, kwargs))
    return out


def _model_name(results: Path) -> str:
    try:
        return str(orjson.loads(results.read_bytes()).get("model_name") or "")
    except (OSError, orjson.JSONDecodeError, AttributeError):
        return ""


IMPORTERS.add("lm-eval", Importer(read, "lm-evaluation-harness samples_*.jsonl (--log_samples)"))
