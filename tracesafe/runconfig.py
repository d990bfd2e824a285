"""Run configs (TOML): one typed section per table, read and checked before anything runs.

A key no section declares fails as one line, ``FILE: [section] unknown key 'x'``, as does a value of the
wrong type; ``[generate]`` and each ``[[models]]`` take GenerateConfig's flat keys (each declared once, in
its concern: tracesafe.generate.config), ``[judge]`` its own fields plus the options the chosen judges accept (``[judge.NAME]`` for one judge).
Values are checked as well (a judge, segment or backend name, a judge card's file, a negative limit, each model's
generation settings), all before anything runs, so ``tracesafe run --dry-run`` finds them; judge options' values are
the judges' own, checked when judging starts.

    [run]
    name = "r1-hidden-risks"
    suites = ["sst", "xstest"]          # built-in names or prompt files; or
    traces = ["traces/*.jsonl"]          # existing trace files (no generation)
    limit = 0                            # first N prompts of each suite (0 = all)
    reasoning_format = "qwen3"           # split every trace with this family (default: detect per trace)

    [generate]                           # defaults for every model: any GenerateConfig flat key
    backend = "vllm"
    samples = 1
    engine_options = {max_num_seqs = 64} # engine-specific knobs, passed to the engine as they are

    [[models]]
    name = "R1-Distill-Qwen-7B"          # label in file names and the report
    model = "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B"
    # any [generate] key, overriding it for this model (reasoning_format too)

    [judge]
    judges = ["offline", "refusal"]
    segments = ["thinking", "answer"]
    # judge_model, backend, batch_size, cache_dir, retry_errors, and judge options

    [report]
    title = "..."
    judge_cards = ["lg-card.json"]       # judge cards (tracesafe judge-eval --card): corrected rates
    default_cards = true                 # the built-in offline/refusal cards
"""

from __future__ import annotations

import copy
import inspect
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .engines.openai_client import redact


@dataclass
class RunSection:
    name: str | None = None  # None: the config file's stem
    suites: list[str] = field(default_factory=list)
    traces: list[str] = field(default_factory=list)
    limit: int = 0
    reasoning_format: str | None = None


@dataclass
class JudgeSection:
    judges: list[str] = field(default_factory=lambda: ["offline", "refusal"])
    segments: list[str] = field(default_factory=lambda: ["thinking", "answer"])
    # run_judges' settings (judge_model, backend, batch_size, cache_dir, retry_errors) and judge options
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class ReportSection:
    title: str | None = None  # None: the run's name
    judge_cards: list[str] = field(default_factory=list)
    default_cards: bool = True


@dataclass
class RunConfig:
    path: Path
    run: RunSection
    generate: dict[str, Any] = field(default_factory=dict)  # GenerateConfig flat keys, defaults for every model
    models: list[dict[str, Any]] = field(default_factory=list)  # GenerateConfig flat keys and a name
    judge: JudgeSection = field(default_factory=JudgeSection)
    report: ReportSection = field(default_factory=ReportSection)
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.run.name or self.path.stem


SECTIONS = ("run", "generate", "models", "judge", "report")
# run_judges' parameters that a config does not set: the run supplies them
_RUN_SUPPLIED = {"traces", "judges", "segments", "output", "progress", "on_bad_line", "reasoning_format", "judge_options"}


def _type_ok(value: Any, hint: Any) -> bool:
    """Whether a TOML value fits a field's annotation (simple types: str, int, float, bool, list, dict, X | None)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is Any:
        return True
    if origin is not None:
        if not isinstance(value, origin):
            return False
        args = typing.get_args(hint)
        return origin is not list or not args or all(_type_ok(v, args[0]) for v in value)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint) if isinstance(hint, type) else True


def unknown_keys(path: Path, section: str, keys: Any, known: set[str]) -> None:
    unknown = [k for k in keys if k not in known]
    if unknown:
        raise ValueError(f"{path}: [{section}] unknown key {', '.join(map(repr, unknown))} (known: {', '.join(sorted(known))})")


def check_table(path: Path, section: str, table: Any, cls: type | dict[str, Any], extra: set[str] | None = None) -> dict[str, Any]:
    """``table`` checked against the fields of dataclass ``cls``, or a dict key -> type hint (and ``extra``
    keys, taken as they are)."""
    if not isinstance(table, dict):
        raise ValueError(f"{path}: [{section}] must be a table, not {type(table).__name__}")
    hints = cls if isinstance(cls, dict) else typing.get_type_hints(cls)
    unknown_keys(path, section, table, set(hints) | (extra or set()))
    for k, v in table.items():
        if k in hints and not _type_ok(v, hints[k]):
            raise ValueError(f"{path}: [{section}] {k} = {v!r}: expected {getattr(hints[k], '__name__', None) or hints[k]}")
    return dict(table)


def _check_judge_options(path: Path, names: list[str], options: dict[str, Any]) -> None:
    """[judge]'s keys besides judges and segments: run_judges' settings, options one of the judges ``names``
    accepts, and tables [judge.NAME] of options judge NAME accepts. A judge that takes any option (**kwargs)
    lets any key through, as run_judges does."""
    from .judges import list_judges, run_judges
    from .judges._batch import accepted_options

    infos = {i.name: i for i in list_judges()}
    accepted = {n: accepted_options(infos[n].cls) for n in names if n in infos}
    for name, table in options.items():
        if isinstance(table, dict) and accepted.get(name) is not None:
            unknown_keys(path, f"judge.{name}", table, accepted[name])
    if None in accepted.values():
        return
    known = {n for n, p in inspect.signature(run_judges).parameters.items() if p.kind is not p.VAR_KEYWORD} - _RUN_SUPPLIED
    unknown_keys(path, "judge", options, known | set(infos) | {"judges", "segments"}.union(*accepted.values()))


SMOKE_JUDGES = ("offline", "refusal")  # the judges that need no model download
_SMOKE_DROP = ("tensor_parallel_size", "pipeline_parallel_size", "data_parallel_size", "dtype", "max_model_len",
               "api_base", "api_key_env", "gpu_memory_utilization", "backend", "engine_options")  # fmt: skip


def smoke(raw: dict[str, Any], tiny_model: str) -> dict[str, Any]:
    """The same run shrunk to a CPU check: every model replaced by the tiny test model (transformers
    backend), 3 prompts per suite, at most 2 samples of 48 tokens, and model judges replaced by the
    offline one. Thinking modes, system prompts and the rest of the config stay, so the smoke run walks
    the same code paths as the real one."""
    raw = copy.deepcopy(raw)
    run_sec = raw.setdefault("run", {})
    run_sec["limit"] = min(int(run_sec.get("limit") or 3), 3)
    gen = raw.setdefault("generate", {})
    for k in _SMOKE_DROP:
        gen.pop(k, None)
    # morethink's thought budget must leave room for an answer within 48 tokens.
    gen.update(backend="hf", max_tokens=48, think_budget=24, samples=min(int(gen.get("samples", 1)), 2))
    for m in raw.get("models", []):
        m["model"] = tiny_model
        for k in _SMOKE_DROP:
            m.pop(k, None)
        if "samples" in m:
            m["samples"] = min(int(m["samples"]), 2)
    judge = raw.setdefault("judge", {})
    # Model judges become the offline harm judge, so the smoke report still has harm verdicts.
    kept = list(dict.fromkeys(j if j in SMOKE_JUDGES else "offline" for j in judge.get("judges", SMOKE_JUDGES)))
    raw["judge"] = {"judges": kept, "segments": judge.get("segments", JudgeSection().segments)}
    return raw


def load_config(
    path: str | os.PathLike, overrides: dict[str, Any] | None = None, *, smoke_model: str | None = None
) -> RunConfig:
    """Read and check a run config; errors name the file, the section and the offending key. With
    ``smoke_model``, the config is shrunk to a CPU smoke run on that model (see ``smoke``)."""
    from .generate import GenerateConfig

    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{path}: {e}") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not a TOML run config (not UTF-8 text: byte {e.object[e.start]:#04x} at offset {e.start})") from None
    if smoke_model is not None:
        raw = smoke(raw, smoke_model)
    for key, value in (overrides or {}).items():  # dotted keys, e.g. "run.limit", "models.0.samples"
        _override(path, raw, key, value)
    unknown = set(raw) - set(SECTIONS)
    if unknown:
        raise ValueError(f"{path}: unknown section(s) {sorted(unknown)}; expected {sorted(SECTIONS)}")
    run = RunSection(**check_table(path, "run", raw.get("run", {}), RunSection))
    keys = GenerateConfig.flat_types()  # flat keys, each a field of one concern
    generate = check_table(path, "generate", raw.get("generate", {}), keys)
    models = raw.get("models", [])
    if not isinstance(models, list):
        raise ValueError(f"{path}: models must be an array of tables ([[models]])")
    models = [check_table(path, "[models]", m, keys, {"name"}) for m in models]
    table = raw.get("judge", {})
    if not isinstance(table, dict):
        raise ValueError(f"{path}: [judge] must be a table, not {type(table).__name__}")
    options = {k: v for k, v in table.items() if k not in ("judges", "segments")}
    judge = JudgeSection(**check_table(path, "judge", {k: table[k] for k in table if k not in options}, JudgeSection), options=options)
    if options:
        _check_judge_options(path, judge.judges, options)
    report = ReportSection(**check_table(path, "report", raw.get("report", {}), ReportSection))
    cfg = RunConfig(path=path, run=run, generate=generate, models=models, judge=judge, report=report, raw=raw)
    if run.reasoning_format not in (None, "auto"):
        from .formats import get

        try:
            get(run.reasoning_format)
        except ValueError as e:
            raise ValueError(f"{path}: run.reasoning_format: {e}") from None
    if not run.traces and not models:
        raise ValueError(f"{path}: give [[models]] to generate traces, or run.traces to judge existing ones")
    if models and not run.suites:
        raise ValueError(f"{path}: run.suites is required with [[models]]")
    for i, m in enumerate(models):
        if "model" not in m:
            raise ValueError(f"{path}: models[{i}] has no 'model' (a path or hub name)")
    names = [model_label(m) for m in models]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: two [[models]] share the name {sorted(n for n in names if names.count(n) > 1)[0]!r}")
    _check_values(cfg)
    return cfg


def _override(path: Path, raw: dict[str, Any], key: str, value: Any) -> None:
    """Set dotted ``key`` in the parsed TOML: a table's key, or an index of an array of tables (``models.0``)."""
    node: Any = raw
    *parents, leaf = key.split(".")
    for i, part in enumerate([*parents, leaf]):
        if isinstance(node, list):
            if not (part.isdigit() and int(part) < len(node)):
                raise ValueError(f"{path}: --set {key}: {'.'.join(parents[:i])} is an array of {len(node)} tables; "
                                 f"{part!r} is not one of its indexes (0 to {len(node) - 1})")  # fmt: skip
            part = int(part)
        elif not isinstance(node, dict):
            raise ValueError(f"{path}: --set {key}: {'.'.join(parents[:i])} is a value, not a table")
        if i == len(parents):
            node[part] = value
        elif isinstance(node, dict):
            node = node.setdefault(part, {})
        else:
            node = node[part]


def generate_config(cfg: RunConfig, m: dict[str, Any]):
    """Model ``m``'s GenerateConfig: [generate]'s keys, then the model's own; errors name the file and the model."""
    from .generate import GenerateConfig

    fields = {"reasoning_format": cfg.run.reasoning_format, **cfg.generate, **{k: v for k, v in m.items() if k != "name"}}
    try:
        return GenerateConfig.from_flat(**fields)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{cfg.path}: model {model_label(m)!r}: {e}") from None


def _check_values(cfg: RunConfig) -> None:
    """Values a type check lets through, checked before anything runs (and by --dry-run): every model's
    settings, its backend, the judges and segments by name, the judge cards' files. A typo found after
    hours of generation costs the hours."""
    from .engines.registry import engine_class
    from .judges import check_judges, check_segments

    path = cfg.path
    if cfg.run.limit < 0:
        raise ValueError(f"{path}: [run] limit = {cfg.run.limit}: must be >= 0 (0: every prompt)")
    for m in cfg.models:
        try:
            engine_class(generate_config(cfg, m).backend)  # the registry names the known engines
        except ValueError as e:
            raise ValueError(f"{path}: model {model_label(m)!r}: backend: {e}") from None
    try:
        check_judges(cfg.judge.judges)
        check_segments(cfg.judge.segments)
    except ValueError as e:
        raise ValueError(f"{path}: [judge] {e}") from None
    for card in cfg.report.judge_cards:
        if not card_path(cfg, card).is_file():
            raise ValueError(f"{path}: [report] judge_cards: {card}: no such file")


def card_path(cfg: RunConfig, card: str) -> Path:
    """A judge card named in the config: an absolute path, or one relative to the config file."""
    return Path(card) if Path(card).is_absolute() else cfg.path.parent / card


def config_warnings(cfg: RunConfig) -> list[str]:
    """What a config file asks for that deserves a look before anything runs: an environment variable
    sent as an API key (and where to), a model repository's own code executed."""
    out = []
    opts = cfg.judge.options
    sections = [(f"model {model_label(m)!r}", {**cfg.generate, **m}) for m in cfg.models]
    sections += [("[judge]", opts)] + [(f"judge {k!r}", v) for k, v in opts.items() if isinstance(v, dict)]
    for where, section in sections:
        if section.get("api_key_env"):
            to = section.get("api_base") or section.get("base_url") or "the default endpoint"
            out.append(f"warning: {cfg.path}: {where} sends the environment variable {section['api_key_env']} as an API key "
                       f"to {redact(str(to))}")  # fmt: skip
        if section.get("trust_remote_code"):
            out.append(f"warning: {cfg.path}: {where} sets trust_remote_code: the model repository's own code will run")
    return out


def model_label(m: dict[str, Any]) -> str:
    return str(m.get("name") or Path(str(m["model"]).rstrip("/")).name)


__all__ = ["JudgeSection", "ReportSection", "RunConfig", "RunSection", "card_path", "config_warnings", "generate_config", "load_config",
           "model_label", "smoke"]
