"""Prompt suites: the built-in ones (shipped as package data with attribution) and user files.

Built in (both CC-BY-4.0, attribution in ``tracesafe/suites/data/ATTRIBUTION.md``):
- ``sst``: SimpleSafetyTests (Vidgen et al. 2023), 100 harmful prompts, 5 harm areas x 2 categories.
- ``xstest``: XSTest v2 (Röttger et al., NAACL 2024), 250 safe prompts (over-refusal) and 200 unsafe
  contrast prompts; ``category`` is the prompt type. ``xstest-safe``: its 250 safe prompts only.
- ``strongreject``: StrongREJECT (Souly et al. 2024), the 281 of its 313 prompts under MIT (custom, DAN, AdvBench
  sources); all 313 from the user's copy as ``strongreject-full:PATH``.
- ``harmbench``: HarmBench's 320 text test behaviors (Mazeika et al. 2024, MIT); contextual behaviors carry
  their context string before the behavior, as HarmBench's generation does.

Paper benchmarks that cannot be shipped (AIR-Bench, CyberSecEval, WildGuardTest, WildJailbreak) are read from
the user's copy as ``NAME:PATH`` with a row-count check (``suites/local.py``).

To add a suite:
- shippable (its license allows redistribution): put the file under ``suites/data/`` with its attribution in
  ``data/ATTRIBUTION.md``, write a ``_load_<name>() -> list[Prompt]`` here and ``BUILTIN.add(...)`` it below;
- not shippable: ``LOCAL.add(LocalSuite(...))`` in ``local.py`` with the download it needs, the row count its
  publisher documents and a ``convert(rows, path)``;
and add a test that loads it (``tests/test_paper_suites.py`` builds stand-ins for the unshippable ones).
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

from .._util.fields import PROMPT_FIELDS, parse_label
from .._util.provenance import sha256_text
from .._util.registry import Registry
from ..records import Prompt
from .rows import read_rows


def _data(name: str):
    return resources.files(__package__).joinpath("data", name)


def _load_sst() -> list[Prompt]:
    with _data("simple_safety_tests.csv").open(encoding="utf-8", newline="") as f:
        return [
            Prompt(
                id=row["id"],
                text=row["prompts_final"],
                suite="sst",
                category=row["category"],
                harm_area=row["harm_area"],
                label="harmful",
            )
            for row in csv.DictReader(f)
        ]


def _load_xstest() -> list[Prompt]:
    with _data("xstest_prompts.csv").open(encoding="utf-8", newline="") as f:
        return [
            Prompt(
                id=f"xstest_{int(row['id']):03d}",
                text=row["prompt"],
                suite="xstest",
                category=row["type"],
                harm_area=row["note"] or None,
                label="harmful" if row["label"] == "unsafe" else "benign",
                meta={"focus": row["focus"]},
            )
            for row in csv.DictReader(f)
        ]


def _load_xstest_safe() -> list[Prompt]:
    return [p for p in _load_xstest() if p.label == "benign"]


def _load_strongreject() -> list[Prompt]:
    from .local import _strongreject_full

    with _data("strongreject_mit.csv").open(encoding="utf-8", newline="") as f:
        rows = list(enumerate(csv.DictReader(f), 2))
    return _strongreject_full(rows, Path("strongreject_mit.csv"))


def _load_harmbench() -> list[Prompt]:
    with _data("harmbench_behaviors_text_test.csv").open(encoding="utf-8", newline="") as f:
        return [
            Prompt(
                id=row["BehaviorID"],
                # HarmBench's contextual behaviors: f"{context}\n\n---\n\n{behavior}".
                text=f"{row['ContextString']}\n\n---\n\n{row['Behavior']}" if row["ContextString"] else row["Behavior"],
                suite="harmbench",
                category=row["FunctionalCategory"],
                harm_area=row["SemanticCategory"],
                label="harmful",
            )
            for row in csv.DictReader(f)
        ]


class Suite(NamedTuple):
    load: Callable[[], list[Prompt]]
    description: str


# Suites shipped with the package, by name (`tracesafe suites list` prints them in this order).
BUILTIN: Registry[Suite] = Registry("built-in suite")
BUILTIN.add("sst", Suite(_load_sst, "SimpleSafetyTests: 100 harmful prompts, 5 harm areas (Vidgen et al. 2023, CC-BY-4.0)"))
BUILTIN.add("xstest", Suite(_load_xstest, "XSTest v2: 250 safe + 200 unsafe contrast prompts (Röttger et al. 2024, CC-BY-4.0)"))
BUILTIN.add("xstest-safe", Suite(_load_xstest_safe, "XSTest v2: the 250 safe prompts (over-refusal)"))
BUILTIN.add("strongreject", Suite(_load_strongreject, "StrongREJECT: the 281 MIT-licensed of 313 forbidden prompts (Souly et al. 2024)"))
BUILTIN.add("harmbench", Suite(_load_harmbench, "HarmBench: 320 text test behaviors (Mazeika et al. 2024, MIT)"))


def is_named(name: str) -> bool:
    """A built-in suite name or a ``NAME:PATH`` / ``NAME`` of a paper benchmark read from the user's copy."""
    from .local import split_name

    return name in BUILTIN or split_name(name) is not None


def load_suite(
    name_or_path: str | os.PathLike,
    *,
    text_field: str | None = None,
    id_field: str | None = None,
    category_field: str | None = "category",
    label_field: str | None = "label",
    harm_area_field: str | None = "harm_area",
) -> list[Prompt]:
    """A built-in suite by name, or a user file: CSV, JSONL, Parquet, or a local ``datasets`` directory."""
    from .local import load_local, split_name

    name = str(name_or_path)
    if name in BUILTIN:
        return BUILTIN.get(name).load()
    if split_name(name) is not None:
        return load_local(name)
    path = Path(name)
    if not path.exists():
        raise FileNotFoundError(f"{name}: no such file, and not a built-in suite ({', '.join(BUILTIN)})")
    rows = read_rows(path)
    suite = path.stem
    prompts: list[Prompt] = []
    seen: dict[str, int] = {}
    for lineno, row in rows:
        if str(row.get("schema", "")).startswith(_PROMPT_SCHEMA):  # `suites show -o`'s output: kept as written
            try:
                prompts.append(Prompt.from_dict(row))
            except (TypeError, ValueError) as e:
                raise ValueError(f"{path}:{lineno}: {e}") from None
            continue
        row = _plain_names(row, [*PROMPT_FIELDS, category_field, label_field, harm_area_field], keep={text_field, id_field})
        field_name = text_field or next((f for f in PROMPT_FIELDS if f in row), None)
        if field_name is None or not isinstance(row.get(field_name), str) or not row[field_name]:
            want = text_field or "/".join(PROMPT_FIELDS)
            raise ValueError(f"{path}:{lineno}: no text in field {want!r} (fields: {', '.join(map(str, row))})")
        text = row[field_name]
        if id_field and row.get(id_field) not in (None, ""):
            pid = str(row[id_field])
        else:
            # Content hash: stable when the file is reordered or extended.
            pid = f"{suite}-{sha256_text(text, 12)}"
        n = seen.get(pid, 0)
        seen[pid] = n + 1
        if n:
            pid = f"{pid}-{n}"
        used = {field_name, id_field, category_field, label_field, harm_area_field}
        prompts.append(
            Prompt(
                id=pid,
                text=text,
                suite=suite,
                category=_str_or_none(row.get(category_field)) if category_field else None,
                harm_area=_str_or_none(row.get(harm_area_field)) if harm_area_field else None,
                label=_label(row.get(label_field), path, lineno) if label_field else None,
                meta={k: v for k, v in row.items() if k not in used},
            )
        )
    return prompts


_PROMPT_SCHEMA = Prompt.schema_name().split("/")[0] + "/"


def _plain_names(row: dict[str, Any], names: list[str | None], keep: set[str | None] = frozenset()) -> dict[str, Any]:
    """``row`` with a header such as ``Label`` or `` label`` (a space after a comma) under the name it stands for:
    matched exactly it would silently fall into ``meta``, and the labels would be lost. Names the caller gave
    (``keep``: ``text_field``, ``id_field``) stay as they are."""
    renames = {}
    for k in row:
        key = str(k).strip().lower()
        if key != k and k not in keep and key in names and key not in row:
            renames[k] = key
    return {renames.get(k, k): v for k, v in row.items()} if renames else row


def _str_or_none(v: Any) -> str | None:
    return None if v is None or v == "" else str(v)


def _label(v: Any, path: Path, lineno: int):
    try:
        return parse_label(v)
    except ValueError as e:
        raise ValueError(f"{path}:{lineno}: {e}") from None


def suite_hash(prompts: list[Prompt]) -> str:
    """Hash of a suite's ids and texts, recorded in run manifests."""
    h = hashlib.sha256()
    for p in prompts:
        h.update(p.id.encode() + b"\0" + p.text.encode() + b"\0")
    return h.hexdigest()[:16]
