"""tracesafe's generation overhead over bare vLLM, and vLLM vs transformers, on the same prompts and params.

One vLLM engine serves both measurements (engine start excluded from both):
- bare: `LLM.chat(messages, SamplingParams(...))`, the shortest script a researcher would write;
- tracesafe: the vllm backend (per-sample seeds, continuous batching through the engine loop, every trace
  split, counted and written to JSONL as it finishes).
Prints output tokens/s of each and the ratio (target: tracesafe overhead <= 5%), then the vllm / hf
tokens-per-second ratio through tracesafe's hf backend.

    python benchmarks/generate_overhead.py [--model DIR] [--prompts 256] [--max-tokens 128]
Without --model it builds the tiny test model (tracesafe.tinymodel).
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
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--gpu-memory-utilization", type=float, default=0.2)
    args = ap.parse_args()

    from vllm import SamplingParams

    from tracesafe.generate import GenerateConfig, generate, open_engine
    from tracesafe.suites import load_suite
    from tracesafe.tinymodel import build_tiny_r1

    model = args.model or str(build_tiny_r1())
    prompts = (load_suite("sst") + load_suite("xstest"))[: args.prompts]
    # Sampling at the published defaults; min_tokens makes both sides produce the same token count.
    cfg = GenerateConfig.from_flat(model=model, backend="vllm", max_tokens=args.max_tokens, gpu_memory_utilization=args.gpu_memory_utilization,
                                   enforce_eager=True, dtype="float32")  # fmt: skip
    backend, _ = open_engine(cfg)
    llm = backend.llm
    params = SamplingParams(temperature=cfg.sampling.temperature, top_p=cfg.sampling.top_p, max_tokens=args.max_tokens, min_tokens=args.max_tokens,
                            seed=0, ignore_eos=True)  # fmt: skip
    msgs = [[{"role": "user", "content": p.text}] for p in prompts]
    llm.chat(msgs[:8], params, use_tqdm=False)  # warm-up

    bare_best = ours_best = float("inf")
    bare_tokens = ours_tokens = 0
    for i in range(args.repeat):
        t = time.perf_counter()
        outs = llm.chat(msgs, params, use_tqdm=False)
        bare_best = min(bare_best, time.perf_counter() - t)
        bare_tokens = sum(len(o.outputs[0].token_ids) for o in outs)

        # The same lengths for tracesafe: force every request to max_tokens, as above.
        orig = backend._sampling_params

        def fixed_length(req, n_prompt, _orig=orig):
            sp = _orig(req, n_prompt)
            sp.min_tokens, sp.ignore_eos = args.max_tokens, True
            return sp

        backend._sampling_params = fixed_length
        with tempfile.TemporaryDirectory() as d:
            out = Path(d) / "t.jsonl"
            t = time.perf_counter()
            stats = generate(cfg, prompts, out, progress=False, engine=backend)
            ours_best = min(ours_best, time.perf_counter() - t)
            import orjson

            ours_tokens = sum(orjson.loads(x)["n_tokens"]["completion"] for x in out.read_bytes().splitlines())
        backend._sampling_params = orig
        assert stats["generated"] == len(prompts)
    bare_tps, ours_tps = bare_tokens / bare_best, ours_tokens / ours_best
    print(f"{len(prompts)} prompts x {args.max_tokens} tokens, best of {args.repeat}")
    print(f"bare vLLM LLM.chat:   {bare_tps:9.1f} output tokens/s")
    print(f"tracesafe vllm:       {ours_tps:9.1f} output tokens/s")
    print(f"ratio tracesafe/bare: {ours_tps / bare_tps:.3f}  (overhead {100 * (1 - ours_tps / bare_tps):+.1f}%; target <= 5%)")

    backend.close()
    del backend, llm
    import gc

    gc.collect()
    hf_cfg = GenerateConfig.from_flat(model=model, backend="hf", max_tokens=args.max_tokens, batch_size=64, dtype="float32")
    hf, _ = open_engine(hf_cfg)
    eos = hf.eos_ids
    hf.eos_ids = set()  # full length, as the vLLM runs
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "t.jsonl"
        t = time.perf_counter()
        generate(hf_cfg, prompts, out, progress=False, engine=hf)
        hf_time = time.perf_counter() - t
        import orjson

        hf_tokens = sum(orjson.loads(x)["n_tokens"]["completion"] for x in out.read_bytes().splitlines())
    hf.eos_ids = eos
    hf_tps = hf_tokens / hf_time
    print(f"tracesafe hf:         {hf_tps:9.1f} output tokens/s")
    print(f"ratio vllm/hf:        {ours_tps / hf_tps:.2f}")


if __name__ == "__main__":
    main()
