"""Judge throughput on 2 CPU cores: segments/s for the refusal and offline judges over 10k segments of
realistic length, and prompts/s of a model judge through vLLM with prefix caching on vs off.

Segments: half thinking (log-normal length, median 3,000 characters, capped at 20,000), half answers
(median 1,200 characters), built from varied English sentences, each with a user prompt.
A second workload is the shipped thinking-contrast gold set (908 thinking segments: deliberations, lectures and
real harmful responses written as reasoning). Targets: refusal >= 20,000 segments/s; offline (both stages) >= 50
segments/s, the judge-validity issue's floor; its first stage alone (``stage2=false``, v3) >= 200 (printed as
ratios to target, with the share of segments the second stage re-scores).
The vLLM part renders the real Llama Guard 3 template around 200 answers and runs the tests' tiny Llama
(head_dim 64, tests/tiny_judges.py) on CPU: it measures the engine-side effect of the template's long shared prefix,
not Llama Guard's own speed.

    .venv/bin/python benchmarks/judge_throughput.py [--n 10000] [--skip-vllm]

Measured 2026-12-01, two idle cores, --n 2000 --skip-vllm (segments/s; ratio to target):
synthetic (mean 2,645 characters): refusal 21,040 (1.05x); offline 37.2 (0.74x of 50); first stage only 804 (4.0x
of 200), the second stage re-reading 17.4% of the segments. Contrast gold (mean 602 characters): refusal 18,256;
offline 90.1 (1.80x); first stage only 2,063, 23.6% re-read.
Later that day (another machine, two idle cores), offline v5 (the second stage re-reads only the uncertain windows
of a routed segment) against v4 from a worktree of the previous commit, run one after the other: synthetic 68.1
(1.36x of 50) vs 38.7 (0.77x); contrast gold 104.1 (2.08x) vs 101.3 (2.03x); first stage only 990 / 2,584.
2026-12-02, two idle cores, refusal v2 (rules for four more languages; each trigger literal scanned once per window
instead of once per rule), the median of 5 passes: synthetic 21,567 (1.08x), contrast gold 18,123 (0.91x); offline
54.8 / 81.5, first stage only 895 / 2,510. Paired against v1's code on the synthetic segments (7 interleaved rounds,
same process): v1 21,826, v2 19,652 (0.79x), v2 restricted to English and Chinese 30,288. An hour later, unchanged
code: refusal 21,568 / 18,224, offline 47.1 / 72.6 (this machine's speed varies from run to run).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

CORES = 2
os.environ.setdefault("RAYON_NUM_THREADS", str(CORES))  # the tokenizers library's thread pool
os.environ.setdefault("OMP_NUM_THREADS", str(CORES))
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:CORES]))

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SENTENCES = [
    "Let me think about what the user is actually asking for here.",
    "The first step would be to gather the materials and check the quantities carefully.",
    "I should consider whether this request could cause harm to someone.",
    "Okay, so the process involves heating the mixture slowly while stirring.",
    "Wait, maybe there is a simpler way to explain this concept.",
    "Historically, this method was used in the nineteenth century by chemists.",
    "The user might be a student working on a school project about safety.",
    "Alternatively, I could provide general information without specific details.",
    "Step two is to connect the components and test the circuit with a multimeter.",
    "Hmm, I recall that the regulations differ between countries and states.",
    "Therefore, the final answer should be clear, concise and accurate.",
    "This is a common question, and the standard answer involves three parts.",
    "Sure, here is an overview of how the system works in practice.",
    "I can't help with that, but I can point you to some resources instead.",
]
PROMPTS = ["How do I make a cake?", "Explain how locks work.", "What household chemicals are dangerous to mix?",
           "Write a story about a heist.", "How can I kill a Python process?"]  # fmt: skip


def make_segments(n: int, seed: int = 0):
    import numpy as np

    from tracesafe.judges import JudgeItem

    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        thinking = i % 2 == 0
        target = int(min(20000, rng.lognormal(np.log(3000 if thinking else 1200), 0.6)))
        parts, size = [], 0
        while size < target:
            s = SENTENCES[rng.integers(len(SENTENCES))]
            parts.append(s)
            size += len(s) + 1
        items.append(JudgeItem(text=" ".join(parts), prompt=PROMPTS[i % len(PROMPTS)],
                               segment="thinking" if thinking else "answer"))  # fmt: skip
    return items


def rate(judge, items, batch: int) -> float:
    judge.judge(items[:batch])  # warm-up (loads the head / compiles the regex)
    t = time.perf_counter()
    for i in range(0, len(items), batch):
        judge.judge(items[i : i + batch])
    return len(items) / (time.perf_counter() - t)


def bench_vllm(n: int = 400) -> None:
    import tempfile

    sys.path.insert(0, str(REPO / "tests"))
    import tiny_judges as tj
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    from tracesafe.judges.llama_guard import LlamaGuardJudge

    model = tj.build("llama", Path(tempfile.gettempdir()) / "tracesafe-bench-models")
    judge = LlamaGuardJudge(model=str(model), backend="vllm", variant="8b")
    items = make_segments(n, seed=1)[1::2]  # answers
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model)
    ids = [tok(judge.render(it), add_special_tokens=False)["input_ids"][:4000] for it in items]
    print(f"vLLM (CPU, tiny random Llama, Llama Guard 3 template): {len(ids)} prompts, "
          f"mean {sum(map(len, ids)) / len(ids):.0f} tokens")  # fmt: skip
    rates = {}
    for caching in (False, True):
        llm = LLM(model=str(model), dtype="float32", gpu_memory_utilization=0.2, max_model_len=4096,
                  enable_prefix_caching=caching, enforce_eager=True, seed=0)  # fmt: skip
        sp = SamplingParams(temperature=0.0, max_tokens=20, logprobs=20)
        llm.generate([TokensPrompt(prompt_token_ids=ids[0])], sp, use_tqdm=False)
        t = time.perf_counter()
        llm.generate([TokensPrompt(prompt_token_ids=s) for s in ids], sp, use_tqdm=False)
        rates[caching] = len(ids) / (time.perf_counter() - t)
        llm.llm_engine.engine_core.shutdown()
        del llm
    print(f"  prefix caching off: {rates[False]:.1f} prompts/s")
    print(f"  prefix caching on:  {rates[True]:.1f} prompts/s   ratio {rates[True] / rates[False]:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--skip-vllm", action="store_true")
    args = ap.parse_args()

    from tracesafe.judges import JudgeItem, get_judge

    items = make_segments(args.n)
    chars = sum(len(it.text) for it in items) / len(items)
    print(f"{len(items)} segments, mean {chars:.0f} characters, {CORES} CPU cores")
    from tracesafe.judges._eval import load_gold
    from tracesafe.judges.offline import top_meta

    gold = [JudgeItem(text=g.response, prompt=g.prompt or "", segment="thinking") for g in load_gold("contrast")]
    lo, hi = top_meta()["band"]
    for label, its in (("synthetic", items), ("contrast gold", gold)):
        print(f"{label}: {len(its)} segments, mean {sum(len(it.text) for it in its) / len(its):.0f} characters")
        for name, opts, batch, target in (("refusal", {}, 1000, 20_000), ("offline", {}, 256, 50),
                                          ("offline", {"stage2": False}, 256, 200)):  # fmt: skip
            judge = get_judge(name, **opts)
            # The refusal judge's pass takes a fraction of a second: the median of 5 passes, not one noisy one.
            r = statistics.median(rate(judge, its, batch) for _ in range(5 if name == "refusal" else 1))
            what = name + (" (first stage only)" if opts else "")
            routed = ""
            if name == "offline" and opts:
                scores = [res.score for i in range(0, len(its), batch) for res in judge.judge(its[i : i + batch])]
                routed = f"   second stage re-scores {sum(lo <= x < hi for x in scores) / len(scores):.1%}"
            print(f"  {what:28s} {r:10.1f} segments/s   target {target}   ratio {r / target:.2f}x{routed}")
    if not args.skip_vllm:
        bench_vllm()


if __name__ == "__main__":
    main()
