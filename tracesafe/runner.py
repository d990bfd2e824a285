"""`tracesafe run CONFIG.toml`: generate -> split -> judge -> report in one run directory.

A run directory holds ``config.toml`` (a copy), ``manifest.json`` (versions, models, seeds, judges, suite
hashes), ``traces/<model>.jsonl`` (and ``traces/<input name>`` per trace input; a name taken already gets a
short hash suffix), ``verdicts.jsonl`` and ``report/``. Each stage leaves a stamp in
``.stages/`` holding the fingerprint of its inputs; a rerun skips a stage whose stamp matches, and an
interrupted stage resumes on its own (generation skips finished trace ids, judging reuses its cache).

The config (TOML) and its sections: ``tracesafe.runconfig``.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import os
import re
import time
from pathlib import Path
from typing import Any

import orjson

from ._util.provenance import package_versions, sha256_file, sha256_text
from .engines.openai_client import redact
from .runconfig import RunConfig, card_path, config_warnings, generate_config, load_config, model_label
from .store import atomic_output


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
        out = f"{stem}-{sha256_text(f'{identity}#{i}', 8)}{suffix}"
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
        return self.dir / (f"{s}.json" if s == name else f"{s}-{sha256_text(name, 8)}.json")

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
    for pattern in cfg.run.traces:
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
    for s in cfg.run.suites:
        name = s if is_named(s) or os.path.isabs(s) else (s if Path(s).exists() else str(cfg.path.parent / s))
        ps = load_suite(name)
        if cfg.run.limit:
            ps = ps[: cfg.run.limit]
        hashes[s] = {"n": len(ps), "hash": suite_hash(ps)}
        prompts += ps
    return prompts, hashes


def plan(cfg: RunConfig) -> list[str]:
    """Human-readable plan of what `run` would do (for --dry-run)."""
    lines = [f"run {cfg.name!r} from {cfg.path}"]
    n_traces = 0
    if cfg.models:
        prompts, hashes = _prompts(cfg)
        for s, h in hashes.items():
            lines.append(f"  suite {s}: {h['n']} prompts (hash {h['hash']})")
        for m in cfg.models:
            gcfg = generate_config(cfg, m)
            samples, backend = gcfg.selection.samples, gcfg.backend
            n = len(prompts) * samples
            n_traces += n
            lines.append(f"  generate {model_label(m)} ({m['model']}, backend {backend}): "
                         f"{len(prompts)} prompts x {samples} samples = {n} traces")
    for f in _trace_inputs(cfg) if cfg.run.traces else []:
        with open(f, "rb") as fh:
            n = sum(1 for line in fh if line.strip())
        n_traces += n
        lines.append(f"  split {f}: {n} traces")
    lines.append(f"  judge {n_traces} traces x {len(cfg.judge.segments)} segments ({', '.join(cfg.judge.segments)}) x "
                 f"{len(cfg.judge.judges)} judges ({', '.join(cfg.judge.judges)}) = up to {n_traces * len(cfg.judge.segments) * len(cfg.judge.judges)} verdicts")
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
    manifest: dict[str, Any] = {"name": cfg.name, "config_sha256": sha256_file(cfg.path),
                                "config": cfg.raw, "packages": package_versions(), "models": {}, "inputs": {}}

    if cfg.models:
        from .generate import generate

        prompts, manifest["suites"] = _prompts(cfg)
        for m in cfg.models:
            gcfg = generate_config(cfg, m)
            out = traces_dir / unique_name(f"{slug(model_label(m))}.jsonl", model_label(m), taken)
            fp = _fingerprint("generate", model_label(m), gcfg.flat(), manifest["suites"])
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
            manifest["models"][model_label(m)] = {"config": gcfg.flat(), "traces": str(out.name)}
            trace_files.append(out)

    for src in _trace_inputs(cfg) if cfg.run.traces else []:
        from .split import split_file

        out = traces_dir / unique_name(src.name, str(src.resolve()), taken)
        what = src.name if out.name == src.name else f"{src} (as traces/{out.name})"
        fp = _fingerprint("split", src, cfg.run.reasoning_format)
        if stages.done(f"split-{out.name}", fp, [out]):
            log(f"split {what}: done")
        else:
            counts = split_file(src, out, format=cfg.run.reasoning_format)
            log(f"split {what}: " + (", ".join(f"{k} {v}" for k, v in counts.items() if v) or "no records"))
            stages.mark(f"split-{out.name}", fp, [out])
        manifest["inputs"][out.name] = {"source": str(src), "sha256": sha256_file(src)}
        trace_files.append(out)

    from .judges import run_judges

    verdicts = run_dir / "verdicts.jsonl"
    judge = cfg.judge
    fp = _fingerprint("judge", judge.judges, judge.segments, judge.options, *trace_files)
    if stages.done("judge", fp, [verdicts]):
        log("judge: done")
    else:
        stats = run_judges(trace_files, judge.judges, judge.segments, verdicts, **judge.options)
        log("judge: " + ", ".join(f"{k} {v}" for k, v in stats.items() if not isinstance(v, dict)))
        stages.mark("judge", fp, [verdicts])
    manifest["judges"] = _judge_versions(verdicts)

    report_dir = run_dir / "report"
    html = report_dir / "report.html"
    fp = _fingerprint("report", dataclasses.asdict(cfg.report), manifest.get("incomplete"), verdicts, *trace_files)
    if stages.done("report", fp, [html]):
        log("report: done")
    else:
        from .report import build_report

        cards = [card_path(cfg, c) for c in cfg.report.judge_cards]
        html = build_report(trace_files, verdicts, report_dir, title=cfg.report.title or cfg.name,
                            judge_cards=cards, default_cards=cfg.report.default_cards,
                            failed_requests=manifest.get("incomplete"))
        stages.mark("report", fp, [html])
    _write_json(run_dir / "manifest.json", manifest)
    return html


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


__all__ = ["RunConfig", "Stages", "config_warnings", "load_config", "model_label", "package_versions", "plan", "run", "slug",
           "unique_name"]  # fmt: skip
