"""SafeChain's result JSON (uw-nsl/safechain ``resp_gen.py``): ``{meta_info, data: [{instruction, prompt,
response: [...], thoughts?: [...], solution?: [...]}]}``. ``prompt`` is the rendered prompt; API runs keep the
thinking and the answer apart in ``thoughts``/``solution``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ._base import IMPORTERS, Bad, Importer, ImportOptions, Item, JsonDocument

# SafeChain's CLI arguments that are sampling parameters, recorded as such.
PARAMS = ("temperature", "topp", "topk", "max_tokens", "repeat_n", "prompt")


def read(path: Path, opts: ImportOptions) -> Iterator[Item | Bad]:
    doc = JsonDocument(path)
    meta = doc.value(("meta_info",), {}, kind=dict)
    params = {k: meta[k] for k in PARAMS if k in meta}
    for i, (lineno, item) in enumerate(doc.items(("data",))):
        where = f"{path}:{lineno}"
        if not isinstance(item, dict) or "instruction" not in item or not isinstance(item.get("response"), list):
            yield Bad(where, f"data[{i}] needs 'instruction' and a 'response' list")
            continue
        responses, thoughts, solutions = item["response"], item.get("thoughts"), item.get("solution")
        split_apart = thoughts is not None and solutions is not None
        lists = isinstance(thoughts, list) and isinstance(solutions, list)
        if split_apart and not (lists and len(thoughts) == len(solutions) == len(responses)):
            yield Bad(where, f"data[{i}]: 'thoughts' and 'solution' must be lists as long as 'response'")
            continue
        rendered = item.get("prompt") if isinstance(item.get("prompt"), str) else None
        for s, resp in enumerate(responses):
            yield Item(
                where=f"{where}: data[{i}].response[{s}]",
                fields=item,
                raw=solutions[s] if split_apart else resp,
                reasoning=thoughts[s] if split_apart else None,
                model=meta.get("model") or "",
                prompt=item["instruction"],
                prompt_rendered=rendered,
                fallback_id=f"safechain-{i}",
                params=params,
            )


IMPORTERS.add("safechain", Importer(read, "uw-nsl/safechain resp_gen.py result JSON"))
