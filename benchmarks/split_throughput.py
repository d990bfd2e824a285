"""Throughput of `tracesafe split` against a naive stdlib loop and a bare orjson passthrough of the same file.

Builds synthetic R1-style traces (two sizes, --mb/4 and --mb), then times whole processes, interleaved round
by round (naive, passthrough, tracesafe on one core, tracesafe on all cores, ...) so that a machine shared
with other jobs slows all of them alike:
- naive: json.loads + str.find("</think>") + json.dumps per line (what a quick script does),
- passthrough: orjson.loads + orjson.dumps per line (the floor for any reader/writer of the records; it
  writes half the bytes the splitter writes, which adds thinking and answer),
- tracesafe 1 core / all cores: the `tracesafe split` CLI (full policy: every marker family, harmony,
  forced templates) with its CPU affinity set to one CPU, or left alone (then it uses every CPU),
- start-up: the CLI on an empty file, to tell its fixed start-up cost from the per-byte rate.
Prints the median MB/s of each, the median per-round ratios (tracesafe / naive, target >= 2 on one core;
tracesafe / passthrough) and peak RSS at both sizes (flat in file size). Outputs go to /dev/shm when present,
so the disk's speed does not hide the splitter's.

    python benchmarks/split_throughput.py [--mb 120] [--repeat 5] [--workdir DIR]

Measured 2026-11-30 on 2 CPUs shared with other jobs (load average about 10, so every figure is low and
the CLI start-up was 0.72 s instead of about 0.3 s; it is mostly the import of the CLI framework), 5
interleaved rounds, medians; "before" is the code of issue 16, "after" this one:

| input | naive | passthrough | tracesafe 1 core | tracesafe 2 cores | 1 core / naive | 1 core / passthrough (without start-up) | 2 cores / naive |
|---|---|---|---|---|---|---|---|
| 30 MB, before | 28.6 MB/s | 89.3 | 21.7 | 19.9 | 0.76x | 0.24 (0.57) | 0.69x |
| 30 MB, after | 30.9 MB/s | 100.1 | 26.7 | 23.1 | 0.84x | 0.27 (0.72) | 0.78x |
| 120 MB, before | 35.7 MB/s | 138.9 | 45.5 | 42.2 | 1.42x | 0.33 (0.46) | 1.29x |
| 120 MB, after | 32.1 MB/s | 124.0 | 54.7 | 49.4 | 1.70x | 0.42 (0.60) | 1.53x |

Peak RSS 38.7 MB (1 core) and 42.0 MB (2 cores) at both sizes (flat). On a loaded machine a second
core is no help (the other jobs hold it). Whole-process CPU time on the 120 MB file of a bare
`split_file(src, dst, workers=1)` process (no CLI), paired runs, medians: 0.67 s after, 0.84 s before,
1.43 s for the naive loop (2.1x after, 1.7x before) and 0.34 s for the passthrough (0.51 of it after).

CLI start-up, measured 2026-12-01 on the same 2 shared CPUs (load average 7.7 to 8.9), "before" the
single-module CLI, "after" the cli/ package (a command's module loaded only when it runs; plain options
coerced without typer's pydantic adapters). Whole processes pinned to one CPU, run in turn A B A B, medians:

| figure | before | after |
|---|---|---|
| `tracesafe split` of an empty file, CPU (10 pairs) | 0.405 s, 33.6 MiB peak | 0.194 s, 23.4 MiB peak |
| 30 MB, CPU vs the naive loop (7 pairs) | 0.493 s vs 0.421 s: 0.84x | 0.313 s vs 0.413 s: 1.32x |
| 120 MB, CPU vs the naive loop (4 pairs) | 0.970 s vs 1.583 s: 1.63x | 0.803 s vs 1.650 s: 2.06x |

This script, 3 interleaved rounds, same load (wall clock, so noisier: the before-120 MB naive runs were slow):
30 MB 1 core 0.91x naive before, 1.51x after (start-up 0.92 s -> 0.34 s); 120 MB 1 core 2.57x before, 1.88x
after, 2 cores 1.66x before, 2.04x after. What is left of the start-up is the interpreter and the splitter's
own imports (a bare `split_file` process: about 0.11 s idle) and typer's import (about 0.03 to 0.05 s); at
30 MB the splitter itself (about 0.14 s of CPU beyond its imports) keeps one core near 1.5x the naive loop.

2026-12-01, the two CPUs idle, `importlib.metadata` (25 ms) no longer imported at start-up, --repeat 3: start-up
0.15 s; 30 MB: naive 77.1 MB/s, passthrough 240.7, one core 107.0 (1.39x naive), two cores 108.6 (1.38x); 120 MB:
naive 81.6, passthrough 348.5, one core 179.5 (2.20x), two cores 242.0 (3.08x). Peak RSS 28 / 35 MB, flat.
Later that day, another machine, idle, --repeat 5: start-up 0.12 s; 30 MB: naive 101.1, passthrough 282.0, one core
136.2 (1.32x), two cores 129.9 (1.28x); 120 MB: naive 109.9, passthrough 432.6, one core 254.2 (2.29x), two cores
282.6 (2.57x). At 30 MB the splitter itself takes 0.09 s of the CLI's 0.23 s; the rest is fixed start-up cost
(docs/formats.md breaks it down).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

NAIVE = r"""
import json, sys
with open(sys.argv[1]) as fin, open(sys.argv[2], "w") as fout:
    for line in fin:
        rec = json.loads(line)
        raw = rec["raw"]
        i = raw.find("</think>")
        rec["thinking"], rec["answer"] = (raw[:i].replace("<think>", "").strip(), raw[i + 8:].strip()) if i >= 0 else ("", raw.strip())
        fout.write(json.dumps(rec) + "\n")
"""

PASSTHROUGH = r"""
import sys, orjson
loads, dumps, nl = orjson.loads, orjson.dumps, orjson.OPT_APPEND_NEWLINE
with open(sys.argv[1], "rb") as fin, open(sys.argv[2], "wb") as fout:
    write = fout.write
    for line in fin:
        write(dumps(loads(line), option=nl))
"""

WORDS = "the user asks about a chemical process so I should consider whether this is safe and what the policy says".split()


def build(path: Path, megabytes: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    target = megabytes * 1_000_000
    forms = [
        lambda t, a: ("", f"{t}\n</think>\n\n{a}"),
        lambda t, a: ("", f"<think>\n{t}\n</think>\n\n{a}"),
        lambda t, a: ("<｜Assistant｜><think>\n", f"{t}\n</think>\n\n{a}"),
        lambda t, a: ("", f"<|channel|>analysis<|message|>{t}<|end|><|start|>assistant<|channel|>final<|message|>{a}<|return|>"),
        lambda t, a: ("", f"<think>\n{t}"),
    ]
    size, i = 0, 0
    with open(path, "wb") as f:
        while size < target:
            t = " ".join(rng.choices(WORDS, k=rng.randint(200, 1500)))
            a = " ".join(rng.choices(WORDS, k=rng.randint(20, 200)))
            rendered, raw = forms[i % len(forms)](t, a)
            rec = {"id": f"t{i}", "prompt_id": f"p{i % 100}", "model": "synthetic", "sample": 0, "params": {"temperature": 0.6},
                   "prompt_rendered": rendered or None, "raw": raw}
            line = orjson.dumps(rec) + b"\n"
            f.write(line)
            size += len(line)
            i += 1


def run(cmd: list[str], cpus: set[int] | None = None) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of a child process, on ``cpus`` when given."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if cpus:  # set at once: the CLI reads its CPUs only when it starts splitting, after its imports
        os.sched_setaffinity(p.pid, cpus)
    _, status, usage = os.wait4(p.pid, 0)
    elapsed = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed: {' '.join(cmd)}")
    return elapsed, usage.ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=int, default=120)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="split-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    (work / "naive.py").write_text(NAIVE)
    (work / "passthrough.py").write_text(PASSTHROUGH)
    shm = Path("/dev/shm")
    outdir = Path(tempfile.mkdtemp(dir=shm)) if shm.is_dir() else work
    one_cpu = {min(os.sched_getaffinity(0))}
    ncpu = len(os.sched_getaffinity(0))
    tracesafe = [sys.executable, "-m", "tracesafe.cli", "split"]
    empty = work / "empty.jsonl"
    empty.write_bytes(b"")
    startup = statistics.median(run([*tracesafe, str(empty), "-o", str(outdir / "empty_out.jsonl")])[0] for _ in range(args.repeat))
    print(f"tracesafe CLI start-up (empty file): {startup:.2f} s; one core = CPU {min(one_cpu)}, all cores = {ncpu}")
    rss = {}
    for mb in (args.mb // 4, args.mb):
        src = work / f"traces_{mb}.jsonl"
        if not src.exists():
            build(src, mb)
        size_mb = src.stat().st_size / 1e6
        cmds = {
            "naive": ([sys.executable, str(work / "naive.py"), str(src), str(outdir / "naive_out.jsonl")], None),
            "passthrough": ([sys.executable, str(work / "passthrough.py"), str(src), str(outdir / "pass_out.jsonl")], None),
            "tracesafe 1 core": ([*tracesafe, str(src), "-o", str(outdir / "ours1_out.jsonl")], one_cpu),
            f"tracesafe {ncpu} cores": ([*tracesafe, str(src), "-o", str(outdir / "ours_out.jsonl")], None),
        }
        times: dict[str, list[float]] = {k: [] for k in cmds}
        peak: dict[str, float] = {k: 0.0 for k in cmds}
        for _ in range(args.repeat):  # interleaved: a slow spell of the machine hits every command
            for name, (cmd, cpus) in cmds.items():
                t, r = run(cmd, cpus)
                times[name].append(t)
                peak[name] = max(peak[name], r)
        names = list(cmds)
        print(f"\n{size_mb:.1f} MB, median of {args.repeat} interleaved rounds")
        for name in names:
            print(f"  {name:18s} {size_mb / statistics.median(times[name]):7.1f} MB/s   peak RSS {peak[name]:6.1f} MB")
        for name in names[2:]:
            vs_naive = statistics.median(n / o for n, o in zip(times["naive"], times[name]))
            vs_pass = statistics.median(p / o for p, o in zip(times["passthrough"], times[name]))
            steady = statistics.median(p / max(o - startup, 1e-9) for p, o in zip(times["passthrough"], times[name]))
            print(f"  {name:18s} {vs_naive:.2f}x naive, {vs_pass:.2f} of passthrough ({steady:.2f} without the CLI start-up)")
        rss[mb] = peak
    small, big = args.mb // 4, args.mb
    print(f"\npeak RSS growth from {small} MB to {big} MB input: "
          + ", ".join(f"{k} {rss[big][k] / rss[small][k]:.2f}x" for k in rss[big]) + " (1.00x = flat)")
    for f in outdir.glob("*_out.jsonl*"):  # outputs and their lock files
        f.unlink()
    if outdir != work:
        outdir.rmdir()


if __name__ == "__main__":
    main()
