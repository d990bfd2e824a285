"""Shared driver of the reproduction scripts: run each config with `tracesafe run`, compare the runs, then put the
published numbers beside ours (OUT/comparison.csv, and a section appended to the report).

Every script takes --smoke (the same configs end to end on CPU with the tiny test model: what CI runs so the
scripts never rot), -o OUT, --tiny-model PATH, --data NAME=PATH (a paper benchmark that cannot be shipped, from
your copy), --judge NAME (whose verdicts the comparison uses) and --set KEY=VALUE (passed to every run).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tomllib
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
CONFIGS = SCRIPTS / "configs"
PUBLISHED = SCRIPTS / "data" / "published"


def _suites(cfg: Path, data: dict[str, str], smoke: bool) -> list[str] | None:
    """The config's suites with --data paths filled in; None when nothing changes. A smoke run leaves out the
    benchmarks it has no copy of (a full run fails on them with what to download)."""
    from tracesafe.suites.local import split_name

    suites = tomllib.loads(cfg.read_text())["run"]["suites"]
    out = []
    for s in suites:
        local = split_name(s)
        if local and not local[1] and s in data:
            out.append(f"{s}:{data[s]}")
        elif local and not local[1] and smoke:
            print(f"smoke: {cfg.stem}: no copy of {s} (--data {s}=PATH), left out", flush=True)
        else:
            out.append(s)
    return None if out == suites else out


def main(name: str, configs: list[str], description: str, published: str, unverified: list[str] = ()) -> None:
    ap = argparse.ArgumentParser(prog=f"{name}.py", description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="tiny CPU model, 3 prompts a suite, judges needing no download (CI)")
    ap.add_argument("--tiny-model", type=Path, default=None, help="with --smoke: the tiny model directory (built if absent)")
    ap.add_argument("-o", "--output", type=Path, default=Path("runs") / name, help="where the runs and the comparison go")
    ap.add_argument("--data", action="append", default=[], metavar="NAME=PATH",
                    help="your copy of a benchmark that is not shipped (e.g. airbench=/data/air-bench-2024)")
    ap.add_argument("--judge", default=None, help="judge whose verdicts are compared (default: the first validated one)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override for every run")
    ap.add_argument("--dry-run", action="store_true", help="print each run's plan and stop")
    args = ap.parse_args()
    data = {}
    for item in args.data:
        key, sep, path = item.partition("=")
        if not sep or not path:
            ap.error(f"--data {item!r}: expected NAME=PATH")
        data[key] = path
    for line in unverified:
        print(f"UNVERIFIED: {line}", flush=True)
    tracesafe = [sys.executable, "-m", "tracesafe.cli"]
    run_dirs = {}
    for cfg in configs:
        run_dir = args.output / Path(cfg).stem
        cmd = [*tracesafe, "run", str(CONFIGS / cfg), "-o", str(run_dir)]
        suites = _suites(CONFIGS / cfg, data, args.smoke)
        if suites is not None:
            cmd += ["--set", f"run.suites={json.dumps(suites)}"]
        if args.dry_run:
            cmd.append("--dry-run")
        if args.smoke:
            cmd.append("--smoke")
            if args.tiny_model:
                cmd += ["--tiny-model", str(args.tiny_model)]
        for kv in args.set:
            cmd += ["--set", kv]
        print("+", " ".join(cmd[2:]), flush=True)
        if subprocess.run(cmd).returncode:
            sys.exit(1)
        run_dirs[Path(cfg).stem] = run_dir
    if args.dry_run:
        return
    report_dir = run_dirs[Path(configs[0]).stem] / "report"
    if len(run_dirs) > 1:
        cmd = [*tracesafe, "compare", *map(str, run_dirs.values()), "-o", str(args.output / "compare")]
        print("+", " ".join(cmd[2:]), flush=True)
        if subprocess.run(cmd).returncode:
            sys.exit(1)
        report_dir = args.output / "compare"
    _compare(PUBLISHED / published, run_dirs, args.output, report_dir, args.judge, list(unverified))
    print(f"done: {args.output}")


def _compare(published: Path, run_dirs: dict[str, Path], out: Path, report_dir: Path, judge: str | None,
             unverified: list[str]) -> None:
    from tracesafe.compare import (
        append_to_report,
        compare,
        load_published,
        section,
        write_comparison,
    )

    try:
        pub = load_published(published)
    except (OSError, ValueError) as e:
        sys.exit(f"error: {e}")
    df = compare(pub, run_dirs, judge)
    title = f"Published numbers beside ours ({published.name})"
    path = write_comparison(df, out, title, unverified)
    append_to_report(report_dir, section(df, title, unverified))
    counts = df["status"].value_counts().to_dict()
    print(f"comparison: {path} ({len(df)} published cells: " + ", ".join(f"{v} {k}" for k, v in counts.items())
          + f"; section added to {report_dir / 'report.html'})", flush=True)
