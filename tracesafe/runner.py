"""`tracesafe run CONFIG.toml`: generate -> split -> judge -> report in one run directory.

A run directory holds ``config.toml`` (a copy), ``manifest.json`` (versions, models, seeds, judges, suite
hashes), ``traces/<model>.jsonl`` (and ``traces/<input name>`` per trace input; a name taken already gets a
short hash suffix), ``verdicts.jsonl`` and ``report/``. Each stage leaves a stamp in
``.stages/`` holding the fingerprint of its inputs; a rerun skips a stage whose stamp matches, and an
interrupted stage resumes on its own (generation skips finished trace ids, judging reuses its cache).

Config (TOML)::

    [run]
    name = "r1-hidden-risks"
    suites = ["sst", "xstest"]          # built-in names or prompt files; or
    traces = ["traces/*.jsonl"]          # existing trace files (no generation)
    limit = 0                            # first N prompts of each suite (0 = all)
    reasoning_format = "qwen3"           # split every trace with this family (default: detect per trace)

    [generate]                           # defaults for every model: any GenerateConfig field
    backend = "vllm"
    samples = 1

    [[models]]
    name = "R1-Distill-Qwen-7B"          # label in file names and the report
    model = "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B"
    # any [generate] key, overriding it for this model (reasoning_format too)

    [judge]
    judges = ["offline", "refusal"]
    segments = ["thinking", "answer"]
    # judge_model, backend, batch_size, and judge options

    [report]
    title = "..."
    judge_cards = ["lg-card.json"]       # judge cards (tracesafe judge-eval --card): corrected rates
    default_cards = true                 # the built-in offline/refusal cards
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from ._util.provenance import package_versions
from .engines.openai_client import redact
from .store import atomic_output

REPORT_KEYS = {"title", "judge_cards", "default_cards"}


@dataclass
class RunConfig:
    path: Path
    name: str
    suites: list[str] = field(default_factory=list)
    traces: list[str] = field(default_factory=list)
    limit: int = 0
    reasoning_format: str | None = None
    generate: dict[str, Any] = field(default_factory=dict)
    models: list[dict[str, Any]] = field(default_factory=list)
    judge: dict[str, Any] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def judges(self) -> list[str]:
        return list(self.judge.get("judges", ["offline", "refusal"]))

    @property
    def segments(self) -> list[str]:
        return list(self.judge.get("segments", ["thinking", "answer"]))


SMOKE_JUDGES = ("offline", "refusal")  # the judges that need no model download
_SMOKE_DROP = ("tensor_parallel_size", "pipeline_parallel_size", "data_parallel_size", "dtype", "max_model_len",
               "api_base", "api_key_env", "gpu_memory_utilization", "backend")  # fmt: skip


def smoke(raw: dict[str, Any], tiny_model: str) -> dict[str, Any]:
    """The same run shrunk to a CPU check: every model replaced by the tiny test model (transformers
    backend), 3 prompts per suite, at most 2 samples of 48 tokens, and model judges replaced by the
    offline one. Thinking modes, system prompts and the rest of the config stay, so the smoke run walks
    the same code paths as the real one."""
    import copy

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
    raw["judge"] = {"judges": kept, "segments": judge.get("segments", ["thinking", "answer"])}
    return raw


def load_config(
    path: str | os.PathLike, overrides: dict[str, Any] | None = None, *, smoke_model: str | None = None
) -> RunConfig:
    """Read and check a run config; errors name the file and the offending key. With ``smoke_model``,
    the config is shrunk to a CPU smoke run on that model (see ``smoke``)."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{path}: {e}") from None
    if smoke_model is not None:
        raw = smoke(raw, smoke_model)
    for key, value in (overrides or {}).items():  # dotted keys, e.g. "run.limit"
        node = raw
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    known = {"run", "generate", "models", "judge", "report"}
    unknown = set(raw) - known
    if unknown:
        raise ValueError(f"{path}: unknown section(s) {sorted(unknown)}; expected {sorted(known)}")
    unknown = set(raw.get("report", {})) - REPORT_KEYS
    if unknown:
        raise ValueError(f"{path}: [report] unknown key {', '.join(map(repr, sorted(unknown)))} (known: {', '.join(sorted(REPORT_KEYS))})")
    run = raw.get("run", {})
    cfg = RunConfig(
        path=path,
        name=str(run.get("name", path.stem)),
        suites=list(run.get("suites", [])),
        traces=list(run.get("traces", [])),
        limit=int(run.get("limit", 0)),
        reasoning_format=run.get("reasoning_format"),
        generate=dict(raw.get("generate", {})),
        models=[dict(m) for m in raw.get("models", [])],
        judge=dict(raw.get("judge", {})),
        report=dict(raw.get("report", {})),
        raw=raw,
    )
    if cfg.reasoning_format not in (None, "auto"):
        from .formats import get

        try:
            get(cfg.reasoning_format)
        except ValueError as e:
            raise ValueError(f"{path}: run.reasoning_format: {e}") from None
    if not cfg.traces and not cfg.models:
        raise ValueError(f"{path}: give [[models]] to generate traces, or run.traces to judge existing ones")
    if cfg.models and not cfg.suites:
        raise ValueError(f"{path}: run.suites is required with [[models]]")
    for i, m in enumerate(cfg.models):
        if "model" not in m:
            raise ValueError(f"{path}: models[{i}] has no 'model' (a path or hub name)")
    names = [model_label(m) for m in cfg.models]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: two [[models]] share the name {sorted(n for n in names if names.count(n) > 1)[0]!r}")
    return cfg


def config_warnings(cfg: RunConfig) -> list[str]:
    """What a config file asks for that deserves a look before anything runs: an environment variable
    sent as an API key (and where to), a model repository's own code executed."""
    out = []
    sections = [(f"model {model_label(m)!r}", {**cfg.generate, **m}) for m in cfg.models]
    sections += [("[judge]", cfg.judge)] + [(f"judge {k!r}", v) for k, v in cfg.judge.items() if isinstance(v, dict)]
    for where, opts in sections:
        if opts.get("api_key_env"):
            to = opts.get("api_base") or opts.get("base_url") or "the default endpoint"
            out.append(f"warning: {cfg.path}: {where} sends the environment variable {opts['api_key_env']} as an API key "
                       f"to {redact(str(to))}")  # fmt: skip
        if opts.get("trust_remote_code"):
            out.append(f"warning: {cfg.path}: {where} sets trust_remote_code: the model repository's own code will run")
    return out


def model_label(m: dict[str, Any]) -> str:
    return str(m.get("name") or Path(str(m["model"]).rstrip("/")).name)


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "model"


def unique_name(name: str, identity: str, taken: set[str]) -> str:
    """``name``, or ``STEM-HASH.SUFFIX`` (8 hex of the sha256 of ``identity``) when a file of that name is
    taken already, compared case-insensitively (macOS and Windows file systems). Two inputs named
    ``traces.jsonl`` in different folders, or a model ``m`` and an input ``m.jsonl``, must not share one
    trace file; the name depends only on what came before, so a rerun of the same config finds its files."""
    out, i = name, 0
    while out.casefold() in taken:
        stem, suffix = (name[: -len(sfx)], sfx) if (sfx := Path(name).suffix) else (name, "")
        out = f"{stem}-{hashlib.sha256(f'{identity}#{i}'.encode()).hexdigest()[:8]}{suffix}"
        i += 1
    taken.add(out.casefold())
    return out


def _fingerprint(*parts: Any) -> str:
    """Inputs of a stage: file paths are fingerprinted by size and mtime, everything else by value."""
    items = []
    for p in parts:
        if isinstance(p, Path):
            st = p.stat() if p.exists() else None
            items.append([str(p), st.st_size if st else None, st.st_mtime_ns if st else None])
        else:
            items.append(p)
    return hashlib.sha256(orjson.dumps(items, option=orjson.OPT_SORT_KEYS, default=str)).hexdigest()


class Stages:
    """Stamps of finished stages under RUN_DIR/.stages."""

    def __init__(self, run_dir: Path):
        self.dir = run_dir / ".stages"

    def _stamp(self, name: str) -> Path:
        # Names that slug alike ("a b.jsonl", "a_b.jsonl") keep stamps of their own.
        s = slug(name)
        return self.dir / (f"{s}.json" if s == name else f"{s}-{hashlib.sha256(name.encode()).hexdigest()[:8]}.json")

    def done(self, name: str, fingerprint: str, outputs: list[Path]) -> bool:
        stamp = self._stamp(name)
        if not stamp.exists() or not all(o.exists() for o in outputs):
            return False
        data = json.loads(stamp.read_text())
        return data.get("inputs") == fingerprint and data.get("outputs") == _fingerprint(*outputs)

    def mark(self, name: str, fingerprint: str, outputs: list[Path]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        with atomic_output(self._stamp(name), lock=False) as tmp:
            tmp.write_text(json.dumps({"inputs": fingerprint, "outputs": _fingerprint(*outputs), "at": time.time()}))


def _trace_inputs(cfg: RunConfig) -> list[Path]:
    base = cfg.path.parent
    files: list[Path] = []
    for pattern in cfg.traces:
        p = pattern if os.path.isabs(pattern) else str(base / pattern)
        matches = sorted(glob.glob(p))
        if not matches and Path(pattern).exists():
            matches = [pattern]
        if not matches:
            raise FileNotFoundError(f"{cfg.path}: run.traces pattern {pattern!r} matches no file")
        files += [Path(m) for m in matches]
    unique: dict[Path, Path] = {}
    for f in files:  # a file that two patterns name is read once
        unique.setdefault(f.resolve(), f)
    return list(unique.values())


def _prompts(cfg: RunConfig):
    from .suites import is_named, load_suite, suite_hash

    prompts, hashes = [], {}
    for s in cfg.suites:
        name = s if is_named(s) or os.path.isabs(s) else (s if Path(s).exists() else str(cfg.path.parent / s))
        ps = load_suite(name)
        if cfg.limit:
            ps = ps[: cfg.limit]
        hashes[s] = {"n": len(ps), "hash": suite_hash(ps)}
        prompts += ps
    return prompts, hashes


def _generate_config(cfg: RunConfig, m: dict[str, Any]):
    from .generate import GenerateConfig

    fields = {"reasoning_format": cfg.reasoning_format, **cfg.generate, **{k: v for k, v in m.items() if k != "name"}}
    try:
        return GenerateConfig(**fields)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{cfg.path}: model {model_label(m)!r}: {e}") from None


def plan(cfg: RunConfig) -> list[str]:
    """Human-readable plan of what `run` would do (for --dry-run)."""
    lines = [f"run {cfg.name!r} from {cfg.path}"]
    n_traces = 0
    if cfg.models:
        prompts, hashes = _prompts(cfg)
        for s, h in hashes.items():
            lines.append(f"  suite {s}: {h['n']} prompts (hash {h['hash']})")
        for m in cfg.models:
            samples = int({**cfg.generate, **m}.get("samples", 1))
            backend = {**cfg.generate, **m}.get("backend", "vllm")
            n = len(prompts) * samples
            n_traces += n
            lines.append(f"  generate {model_label(m)} ({m['model']}, backend {backend}): "
                         f"{len(prompts)} prompts x {samples} samples = {n} traces")
    for f in _trace_inputs(cfg) if cfg.traces else []:
        with open(f, "rb") as fh:
            n = sum(1 for line in fh if line.strip())
        n_traces += n
        lines.append(f"  split {f}: {n} traces")
    lines.append(f"  judge {n_traces} traces x {len(cfg.segments)} segments ({', '.join(cfg.segments)}) x "
                 f"{len(cfg.judges)} judges ({', '.join(cfg.judges)}) = up to {n_traces * len(cfg.segments) * len(cfg.judges)} verdicts")
    lines.append("  report -> report/report.html")
    return lines


def run(cfg: RunConfig, run_dir: Path, *, log=print) -> Path:
    """Execute (or resume) the run; returns the path of report.html. A generation stage with failed requests
    is recorded in the manifest's ``incomplete`` (model -> failed requests), and the report covers what finished."""
    run_dir.mkdir(parents=True, exist_ok=True)
    stages = Stages(run_dir)
    cfg_copy = run_dir / "config.toml"
    cfg_text = redact(cfg.path.read_text())  # credentials in a URL are not copied
    if not cfg_copy.exists() or cfg_copy.read_text() != cfg_text:
        cfg_copy.write_text(cfg_text)
    traces_dir = run_dir / "traces"
    traces_dir.mkdir(exist_ok=True)
    trace_files: list[Path] = []
    taken: set[str] = set()
    manifest: dict[str, Any] = {"name": cfg.name, "config_sha256": hashlib.sha256(cfg.path.read_bytes()).hexdigest(),
                                "config": cfg.raw, "packages": package_versions(), "models": {}, "inputs": {}}

    if cfg.models:
        from .generate import generate

        prompts, manifest["suites"] = _prompts(cfg)
        for m in cfg.models:
            gcfg = _generate_config(cfg, m)
            out = traces_dir / unique_name(f"{slug(model_label(m))}.jsonl", model_label(m), taken)
            fp = _fingerprint("generate", model_label(m), repr(gcfg), manifest["suites"])
            if stages.done(f"generate-{out.stem}", fp, [out]):
                log(f"generate {model_label(m)}: done")
            else:
                log(f"generate {model_label(m)}: {len(prompts)} prompts ...")
                failed = generate(gcfg, prompts, out)["failed"]
                if failed:  # not stamped done, so a rerun retries them
                    log(f"generate {model_label(m)}: incomplete, {failed} requests failed; rerun to retry them")
                    manifest.setdefault("incomplete", {})[model_label(m)] = failed
                else:
                    stages.mark(f"generate-{out.stem}", fp, [out])
            manifest["models"][model_label(m)] = {"config": {k: v for k, v in vars(gcfg).items()}, "traces": str(out.name)}
            trace_files.append(out)

    for src in _trace_inputs(cfg) if cfg.traces else []:
        from .split import split_file

        out = traces_dir / unique_name(src.name, str(src.resolve()), taken)
        what = src.name if out.name == src.name else f"{src} (as traces/{out.name})"
        fp = _fingerprint("split", src, cfg.reasoning_format)
        if stages.done(f"split-{out.name}", fp, [out]):
            log(f"split {what}: done")
        else:
            counts = split_file(src, out, format=cfg.reasoning_format)
            log(f"split {what}: " + ", ".join(f"{k} {v}" for k, v in counts.items() if v))
            stages.mark(f"split-{out.name}", fp, [out])
        manifest["inputs"][out.name] = {"source": str(src), "sha256": _sha256(src)}
        trace_files.append(out)

    from .judges import run_judges

    verdicts = run_dir / "verdicts.jsonl"
    judge_opts = {k: v for k, v in cfg.judge.items() if k not in ("judges", "segments")}
    fp = _fingerprint("judge", cfg.judges, cfg.segments, judge_opts, *trace_files)
    if stages.done("judge", fp, [verdicts]):
        log("judge: done")
    else:
        stats = run_judges(trace_files, cfg.judges, cfg.segments, verdicts, **judge_opts)
        log("judge: " + ", ".join(f"{k} {v}" for k, v in stats.items() if not isinstance(v, dict)))
        stages.mark("judge", fp, [verdicts])
    manifest["judges"] = _judge_versions(verdicts)

    report_dir = run_dir / "report"
    html = report_dir / "report.html"
    fp = _fingerprint("report", cfg.report, verdicts, *trace_files)
    if stages.done("report", fp, [html]):
        log("report: done")
    else:
        from .report import build_report

        cards = [c if Path(c).is_absolute() else cfg.path.parent / c for c in cfg.report.get("judge_cards", [])]
        html = build_report(trace_files, verdicts, report_dir, title=cfg.report.get("title") or cfg.name,
                            judge_cards=cards, default_cards=bool(cfg.report.get("default_cards", True)))
        stages.mark("report", fp, [html])
    _write_json(run_dir / "manifest.json", manifest)
    return html


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _judge_versions(verdicts: Path) -> dict[str, str]:
    from .store import read_jsonl

    versions: dict[str, str] = {}
    if verdicts.exists():
        for v in read_jsonl(verdicts, on_bad_line="skip", warn=False):
            versions.setdefault(v.get("judge", "?"), v.get("judge_version", "?"))
    return versions


def _write_json(path: Path, data: Any) -> None:
    with atomic_output(path, lock=False) as tmp:
        text = orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS, default=str).decode()
        tmp.write_text(redact(text))  # e.g. an api_base with credentials in the config
