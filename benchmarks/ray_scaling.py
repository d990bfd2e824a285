"""Throughput of the ray backend with 1 vs 2 vLLM workers (Ray Data replicas) on the same prompts.

    python benchmarks/ray_scaling.py [--model DIR] [--prompts 256] [--max-tokens 64] [--repeat 2]

Without --model it uses the tiny test model on CPU, where two workers share the machine's cores: the
ratio there shows the pipeline's overhead, not GPU scaling (see docs/scaling.md for the GPU estimate).
Each measurement includes Ray's engine start, as a real multi-node job pays it once per run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None)
    ap.add_argument("--prompts", type=int, default=256)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=2, help="alternating rounds; the best of each is kept")
    args = ap.parse_args()

    import orjson
    import ray

    from tracesafe.generate import GenerateConfig, generate
    from tracesafe.suites import load_suite
    from tracesafe.tinymodel import build_tiny_r1

    model = args.model or str(build_tiny_r1())
    ray.init(include_dashboard=False, log_to_driver=False)
    prompts = (load_suite("sst") + load_suite("xstest"))[: args.prompts]
    rates = {1: 0.0, 2: 0.0}
    # Alternating rounds, best of each: the first Ray job also pays for the cluster's worker processes.
    for workers in [1, 2] * args.repeat:
        cfg = GenerateConfig.from_flat(model=model, backend="ray", data_parallel_size=workers, max_tokens=args.max_tokens,
                                       gpu_memory_utilization=0.2, enforce_eager=True, dtype="float32")  # fmt: skip
        with tempfile.TemporaryDirectory() as d:
            out = Path(d) / "t.jsonl"
            t = time.perf_counter()
            generate(cfg, prompts, out, progress=False)
            elapsed = time.perf_counter() - t
            tokens = sum(orjson.loads(x)["n_tokens"]["completion"] for x in out.read_bytes().splitlines())
        rate = tokens / elapsed
        rates[workers] = max(rates[workers], rate)
        print(f"{workers} worker(s): {tokens} output tokens in {elapsed:.1f} s = {rate:.1f} tokens/s (engine start included)")
    print(f"best: 1 worker {rates[1]:.1f} tokens/s, 2 workers {rates[2]:.1f} tokens/s")
    print(f"ratio 2 workers / 1 worker: {rates[2] / rates[1]:.2f}")


if __name__ == "__main__":
    main()
