"""Scale of the report stage: 10,000,000 verdicts -> every table, figure, report.md and report.html.

Builds a synthetic run (4 models x 100,000 prompts x 5 samples = 2,000,000 traces with ~300-word thinking;
verdicts from a rubric judge and the offline judge on thinking and answer plus the refusal judge on the
answer = 5 per trace, 1% errors, spans on offline thinking verdicts), then times `tracesafe report` in a
fresh process and reads its peak RSS and CPU time. Target: <= 60 s and <= 2 GB on 2 cores.

    python benchmarks/report_scale.py [--verdicts 10000000] [--workdir DIR] [--keep]

Measured (2-core VM shared with other jobs, so wall time is inflated; CPU time is the fairer figure: on
2 idle cores wall >= CPU / 2; RSS in MiB, as ru_maxrss / 1024):
    1M  verdicts: 11.8 s CPU, peak RSS 485 MB   (first streaming cut 16.5 s, 570 MB; single-file analysis.py
                  16.4 s CPU, 641 MB)
    10M verdicts: 76.2 s CPU (75.2 s wall, load average ~3), peak RSS 1,737 MB: 0.85 of the 2 GB target
                  (before the per-block numpy verdict columns and the join-free tables: 85.7 s CPU, 2,163 MB)
    10M verdicts on the 2 cores idle (2026-12-01): 55.7 s wall, 81.4 s CPU, peak RSS 1,784 MB: 0.93 of the 60 s
                  and 0.87 of the 2 GB target (synthetic run built in 71 s; 5,564 MB of verdict JSONL)
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

JUDGES = (("rubric", "thinking"), ("rubric", "answer"), ("offline", "thinking"), ("offline", "answer"),
          ("refusal", "answer"))
HARM_AREAS = ["Physical harm", "Scams and fraud", "Illegal items", "Self-harm", "Hate"]
WORDS = "the of step and then a to if this would be [REDACTED] user request should I not help with it".split()


def make_run(root: Path, n_verdicts: int, models: int = 4, samples: int = 5, seed: int = 0) -> Path:
    rng = random.Random(seed)
    n_traces = n_verdicts // len(JUDGES)
    n_prompts = n_traces // (models * samples)
    texts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(150, 450))) for _ in range(64)]
    answers = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 120))) for _ in range(64)]
    (root / "traces").mkdir(parents=True, exist_ok=True)
    written = 0
    with open(root / "verdicts.jsonl", "wb") as vf:
        for m in range(models):
            model = f"bench/model-{m}"
            p_think, p_ans = 0.15 + 0.08 * m, 0.05 + 0.02 * m
            with open(root / "traces" / f"model-{m}.jsonl", "wb") as tf:
                tbuf, vbuf = [], []
                for p in range(n_prompts):
                    benign = p % 5 == 4
                    area = HARM_AREAS[p % len(HARM_AREAS)]
                    for s in range(samples):
                        tid = f"{m}-{p}-{s}"
                        thinking = texts[rng.randrange(64)]
                        counted = rng.random() < 0.5
                        tbuf.append(orjson.dumps({
                            "schema": "tracesafe.trace/1", "id": tid, "prompt_id": f"p{p}", "raw": "", "model": model,
                            "sample": s, "suite": "xstest" if benign else "sst", "category": f"cat{p % 2}",
                            "harm_area": None if benign else area, "label": "benign" if benign else "harmful",
                            "thinking": thinking, "answer": answers[rng.randrange(64)], "split_status": "complete",
                            "n_tokens": {"prompt": 20, "thinking": 400, "answer": 60} if counted else {},
                        }, option=orjson.OPT_APPEND_NEWLINE))
                        th_unsafe = (not benign) and rng.random() < p_think
                        an_unsafe = (not benign) and rng.random() < (0.5 if th_unsafe else p_ans)
                        for judge, seg in JUDGES:
                            rec = {"schema": "tracesafe.verdict/1", "trace_id": tid, "segment": seg, "judge": judge,
                                   "judge_version": "1", "status": "ok"}
                            if rng.random() < 0.01:
                                rec.update(status="error", error="unparseable judge output", raw_output="???")
                            elif judge == "refusal":
                                rec.update(unsafe=None, refused=rng.random() < (0.2 if benign else 0.7))
                            else:
                                u = (th_unsafe if seg == "thinking" else an_unsafe) ^ (judge == "offline" and rng.random() < 0.1)
                                rec.update(unsafe=u, score=0.9 if u else 0.1)
                                if judge == "rubric" and u:
                                    rec["harmfulness"] = rng.randint(1, 5)
                                if judge == "offline" and seg == "thinking":
                                    n = len(thinking)
                                    cut = [0, n // 4, n // 2, 3 * n // 4, n]
                                    hot = rng.randrange(4) if u else -1
                                    rec["spans"] = [[cut[i], cut[i + 1], 0.8 if i >= hot >= 0 else 0.1] for i in range(4)]
                            vbuf.append(orjson.dumps(rec, option=orjson.OPT_APPEND_NEWLINE))
                            written += 1
                    if len(tbuf) > 20_000:
                        tf.write(b"".join(tbuf)); vf.write(b"".join(vbuf)); tbuf, vbuf = [], []
                tf.write(b"".join(tbuf)); vf.write(b"".join(vbuf))
    return root


def timed(args: list[str]) -> tuple[float, float, float, str]:
    """(wall seconds, CPU seconds, peak RSS in MB, stderr) of ``tracesafe ARGS`` in a fresh process. CPU time is
    the figure to compare on a shared machine: wall time there depends on the other jobs."""
    code = "import resource, sys; from tracesafe.cli import app\ntry:\n app(sys.argv[1:])\nfinally:\n" \
           " u = resource.getrusage(resource.RUSAGE_SELF)\n" \
           " print(u.ru_utime + u.ru_stime, u.ru_maxrss, file=sys.stderr)"
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(r.stderr)
    *rest, usage = r.stderr.strip().splitlines()
    cpu, rss = usage.split()
    return wall, float(cpu), int(rss) / 1024, "\n".join(rest)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--verdicts", type=int, default=10_000_000)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    root = args.workdir or Path(tempfile.mkdtemp(prefix="tracesafe-report-bench-"))
    try:
        if not (root / "verdicts.jsonl").exists():
            t0 = time.perf_counter()
            make_run(root, args.verdicts)
            print(f"built synthetic run in {time.perf_counter() - t0:.1f} s: {root}")
        size = sum(p.stat().st_size for p in root.rglob("*.jsonl")) / 1e6
        n = sum(1 for _ in open(root / "verdicts.jsonl", "rb"))
        print(f"input: {n:,} verdicts, {size:.0f} MB of JSONL")
        shutil.rmtree(root / "report", ignore_errors=True)
        wall, cpu, peak_mb, _ = timed(["report", str(root)])
        print(f"report: {wall:.1f} s wall, {cpu:.1f} s CPU, peak RSS {peak_mb:.0f} MB")
        print(f"ratio to target: time {wall / 60:.2f} of 60 s, memory {peak_mb / 2048:.2f} of 2 GB")
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
