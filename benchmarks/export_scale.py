"""Scale of `tracesafe export`: the synthetic 1,000,000-verdict run of report_scale.py -> one Parquet file and one
`datasets` folder, each timed in a fresh process with its peak RSS.

    python benchmarks/export_scale.py [--verdicts 1000000] [--workdir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from report_scale import make_run, timed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--verdicts", type=int, default=1_000_000)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    root = args.workdir or Path(tempfile.mkdtemp(prefix="tracesafe-export-bench-"))
    try:
        if not (root / "verdicts.jsonl").exists():
            make_run(root, args.verdicts)
        size = sum(p.stat().st_size for p in root.rglob("*.jsonl")) / 1e6
        print(f"input: {args.verdicts:,} verdicts, {size:.0f} MB of JSONL")
        for fmt, out in (("parquet", root / "out.parquet"), ("datasets", root / "out-ds")):
            wall, cpu, peak, log = timed(["export", str(root), "-o", str(out), "--as", fmt])
            print(log.splitlines()[-1] if log else "")
            size = sum(p.stat().st_size for p in [out, *out.rglob("*")] if p.is_file()) / 1e6
            print(f"{fmt}: {wall:.1f} s wall, {cpu:.1f} s CPU, peak RSS {peak:.0f} MB, {size:.1f} MB written")
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
