"""Paper benchmarks whose license keeps them out of the package: read from the user's own copy, checked.

Name one as ``NAME:PATH`` in ``run.suites`` (e.g. ``"airbench:/data/air-bench-2024"``). PATH is what the
benchmark's publisher distributes: a Hugging Face ``datasets`` folder (``save_to_disk``), a Parquet, CSV or
JSON/JSONL file, or the original JSON file of the benchmark's repository. The loader checks the row count that
the publisher documents (``expected``), so a truncated or different version fails before any generation, and
says what to download when the path is missing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from .._util.provenance import sha256_text
from .._util.registry import Registry
from ..records import Prompt
from .rows import read_rows


@dataclass(frozen=True)
class LocalSuite:
    name: str
    title: str
    download: str  # what to fetch, exactly
    expected: int | None  # rows in the publisher's file; None where no published count was verified
    expected_source: str
    convert: Callable[[list[tuple[int, dict[str, Any]]], Path], list[Prompt]]
    subset_note: str = ""  # how the paper's subset relates to the file, and what is unverified about it


def _field(row: dict[str, Any], key: str, path: Path, lineno: int) -> Any:
    if key not in row or row[key] in (None, ""):
        raise ValueError(f"{path}:{lineno}: no field {key!r} (fields: {', '.join(map(str, row))})")
    return row[key]


def _airbench(rows, path):
    return [Prompt(id=f"airbench_{i:05d}", text=_field(r, "prompt", path, n), suite="airbench",
                   category=str(_field(r, "l2-name", path, n)), harm_area=str(r.get("l3-name") or "") or None,
                   label="harmful", meta={"cate-idx": r.get("cate-idx"), "l4-name": r.get("l4-name")})
            for i, (n, r) in enumerate(rows)]  # fmt: skip


def _mitre(rows, path):
    return [Prompt(id=f"cse_mitre_{i:04d}", text=_field(r, "mutated_prompt", path, n), suite="cyberseceval-mitre",
                   category=str(_field(r, "mitre_category", path, n)), label="harmful")
            for i, (n, r) in enumerate(rows)]  # fmt: skip


def _interpreter(rows, path):
    out = []
    for i, (n, r) in enumerate(rows):
        attack = _field(r, "attack_type", path, n)
        out.append(Prompt(id=f"cse_interpreter_{i:03d}", text=_field(r, "mutated_prompt", path, n),
                          suite="cyberseceval-interpreter", label="harmful",
                          category=", ".join(attack) if isinstance(attack, list) else str(attack)))
    return out


def _prompt_injection(rows, path):
    # The system prompt holds the instruction the injection tries to override: generation sends it as the
    # system message (Prompt.meta["system_prompt"]), as CyberSecEval's harness does.
    return [Prompt(id=f"cse_pi_{_field(r, 'prompt_id', path, n)}", text=_field(r, "user_input", path, n),
                   suite="cyberseceval-prompt-injection", category=str(r.get("injection_variant") or "") or None,
                   harm_area=str(r.get("risk_category") or "") or None, label="harmful",
                   meta={"system_prompt": _field(r, "test_case_prompt", path, n),
                         "judge_question": _field(r, "judge_question", path, n),
                         "injection_type": r.get("injection_type")})
            for n, r in rows]  # fmt: skip


def _truthy(v) -> bool:
    return v is True or str(v).strip().lower() in ("true", "1")


def _wildguardtest(rows, path):
    out = []
    for n, r in rows:
        if _truthy(_field(r, "adversarial", path, n)) and _field(r, "prompt_harm_label", path, n) == "harmful":
            text = _field(r, "prompt", path, n)
            out.append(Prompt(id=f"wgt_{sha256_text(text, 12)}", text=text,
                              suite="wildguardtest-jailbreak", category=str(r.get("subcategory") or "") or None,
                              label="harmful"))
    return out


def _wildjailbreak(rows, path):
    out = []
    for i, (n, r) in enumerate(rows):
        data_type = str(_field(r, "data_type", path, n))
        out.append(Prompt(id=f"wjb_eval_{i:04d}", text=_field(r, "adversarial", path, n), suite="wildjailbreak",
                          category=data_type, label="benign" if data_type.endswith("benign") else "harmful"))
    return out


def _strongreject_full(rows, path):
    return [Prompt(id=f"strongreject_{i:03d}", text=_field(r, "forbidden_prompt", path, n), suite="strongreject",
                   category=_field(r, "category", path, n), label="harmful", meta={"source": r.get("source")})
            for i, (n, r) in enumerate(rows)]  # fmt: skip


PURPLELLAMA = "https://github.com/meta-llama/PurpleLlama/tree/main/CybersecurityBenchmarks/datasets"
# Paper benchmarks read from the user's copy, by name.
LOCAL: Registry[LocalSuite] = Registry("paper benchmark")
for _suite in (
    LocalSuite("airbench", "AIR-Bench 2024 (Zeng et al. 2024), 5,694 harmful prompts in 314 risk categories",
               "Hugging Face dataset stanford-crfm/air-bench-2024, config 'default', split 'test' "
               "(datasets.load_dataset('stanford-crfm/air-bench-2024', split='test').save_to_disk(PATH), or its "
               "Parquet/CSV file)", 5694, "the dataset card of stanford-crfm/air-bench-2024 and issue 18's summary of "
               "Zhou et al. (5,694)", _airbench),
    LocalSuite("cyberseceval-mitre", "CyberSecEval MITRE ATT&CK compliance prompts (Bhatt et al. 2023)",
               f"mitre/mitre_benchmark_100_per_category_with_augmentation.json from {PURPLELLAMA}", 1000,
               "file name: 100 prompts for each of the 10 MITRE ATT&CK categories (not counted here)", _mitre,
               "Zhou et al. evaluate 377 MITRE prompts (issue 18's summary); how those 377 were drawn was not "
               "read from the paper: run.limit or a filtered file is needed to match it."),
    LocalSuite("cyberseceval-interpreter", "CyberSecEval 2 code-interpreter abuse prompts (Bhatt et al. 2024)",
               f"interpreter/interpreter.json from {PURPLELLAMA}", 500,
               "CyberSecEval 2 paper (500 prompts, 5 attack categories) and issue 18's summary of Zhou et al.",
               _interpreter),
    LocalSuite("cyberseceval-prompt-injection", "CyberSecEval 2 textual prompt injection tests (Bhatt et al. 2024)",
               f"prompt_injection/prompt_injection.json from {PURPLELLAMA}", 251,
               "CyberSecEval 2 (251 tests) and issue 18's summary of Zhou et al.", _prompt_injection),
    LocalSuite("wildguardtest-jailbreak", "WildGuardTest adversarial harmful prompts (Han et al. 2024)",
               "Hugging Face dataset allenai/wildguardmix (gated: accept its terms), config 'wildguardtest', split "
               "'test' (save_to_disk, or its Parquet file)", 1725,
               "WildGuard paper and dataset card (1,725 items); the jailbreak subset (adversarial and "
               "prompt_harm_label == 'harmful') is taken from it", _wildguardtest,
               "Zhou et al. use 810 WildGuard jailbreak prompts (issue 18's summary); the subset's size here is "
               "printed by --dry-run and was not checked against 810."),
    LocalSuite("wildjailbreak", "WildJailbreak evaluation set (Jiang et al. 2024): adversarial harmful and benign",
               "Hugging Face dataset allenai/wildjailbreak (gated), config 'eval', split 'train' (that config's only "
               "split; save_to_disk, or a Parquet/CSV export)", 2210,
               "dataset card of allenai/wildjailbreak (2,000 adversarial harmful + 210 adversarial benign)",
               _wildjailbreak,
               "SafeChain evaluates a WildJailbreak subset; its selection was not read from the paper."),
    LocalSuite("strongreject-full", "StrongREJECT, all 313 forbidden prompts (Souly et al. 2024)",
               "strongreject_dataset/strongreject_dataset.csv from https://github.com/alexandrasouly/strongreject "
               "(the built-in 'strongreject' suite has only its 281 MIT-licensed rows)", 313,
               "the StrongREJECT paper (313 prompts)", _strongreject_full),
):  # fmt: skip
    LOCAL.add(_suite.name, _suite)
UNSUPPORTED = {
    "cyberseceval-phishing": "CyberSecEval's spear-phishing test is a multi-turn dialogue between an attacker "
    "model and a simulated victim with a judge model; tracesafe generates single-turn traces, so it does not run it. "
    "Run CyberSecEval's own harness (https://github.com/meta-llama/PurpleLlama, CybersecurityBenchmarks) and "
    "import its responses with `tracesafe import`.",
}


def split_name(name: str) -> tuple[str, str] | None:
    """``NAME:PATH`` (or a bare NAME) of a local suite as (NAME, PATH); None when NAME is not one."""
    key, _, path = name.partition(":")
    return (key, path) if key in LOCAL or key in UNSUPPORTED else None


def load_local(name: str) -> list[Prompt]:
    key, path = split_name(name) or (name, "")
    if key in UNSUPPORTED:
        raise ValueError(f"{key}: {UNSUPPORTED[key]}")
    spec = LOCAL.get(key)
    if not path:
        raise FileNotFoundError(f"{key}: not shipped with tracesafe (license); download {spec.download} and name "
                                f"it as '{key}:PATH'")  # fmt: skip
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file or folder (for suite {key}: download {spec.download})")
    rows = _json_array(p) if p.suffix.lower() == ".json" and p.is_file() else read_rows(p)
    if spec.expected is not None and len(rows) != spec.expected:
        raise ValueError(f"{p}: {len(rows)} rows, but {spec.title} has {spec.expected} ({spec.expected_source}); "
                         f"download {spec.download}")  # fmt: skip
    return spec.convert(rows, p)


def _json_array(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """The benchmark repositories' own format: one JSON array of objects (item numbers stand for lines)."""
    try:
        data = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as e:
        if path.read_bytes().lstrip()[:1] == b"{":  # JSON Lines under a .json name
            from ..store import read_jsonl

            return list(enumerate(read_jsonl(path), 1))
        raise ValueError(f"{path}:1: not JSON ({e})") from None
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise ValueError(f"{path}:1: expected a JSON array of objects")
    return list(enumerate(data, 1))
