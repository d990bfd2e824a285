"""Reproduce SafeChain's decoding strategies (Jiang et al., 2025, "SafeChain: Safety of Language Models with Long
Chain-of-Thought Reasoning Capabilities", arXiv:2502.12025): ZeroThink, LessThink and MoreThink against normal
decoding on StrongREJECT and WildJailbreak, with Safe@1, Safe@K and ConsSafe@K over K = 5 samples per prompt.

    python scripts/reproduce_safechain_decoding.py --set judge.judge_model=/models/Llama-Guard-3-8B \\
        --data wildjailbreak=/data/wildjailbreak-eval
    python scripts/reproduce_safechain_decoding.py --smoke

Configs: scripts/configs/safechain_{normal,zerothink,lessthink,morethink}.toml (identical but for the thinking
mode); compare/ puts the four runs side by side; each run's report/tables/at_k.csv holds Safe@1, Safe@K and
ConsSafe@K; OUT/comparison.csv puts the published cells (scripts/data/published/safechain_decoding.csv) beside ours.
"""

from _reproduce import main

UNVERIFIED = [
    "SafeChain's decoding-strategy table could not be read here: every published value is marked unread.",
    "StrongREJECT: the shipped suite has the 281 MIT-licensed of 313 prompts (all 313: --set "
    "'run.suites=[\"strongreject-full:PATH\", \"wildjailbreak:PATH\"]'); the WildJailbreak subset SafeChain "
    "evaluates was not matched (the whole 2,210-prompt evaluation set runs here).",
]

if __name__ == "__main__":
    modes = ["normal", "zerothink", "lessthink", "morethink"]
    main("reproduce_safechain_decoding", [f"safechain_{m}.toml" for m in modes], __doc__, "safechain_decoding.csv",
         UNVERIFIED)
