"""Reproduce "The Hidden Risks of Large Reasoning Models: A Safety Assessment of R1" (Zhou et al., 2025,
arXiv:2502.12659) on its benchmarks and models: safety on AIR-Bench 2024 and CyberSecEval (MITRE, code
interpreter), over-refusal on XSTest's safe prompts, attacks (WildGuardTest jailbreaks, CyberSecEval prompt
injection), thinking vs answer; DeepSeek-R1 and o3-mini by API, R1-Distill-Llama-70B against Llama-3.3-70B-Instruct
(its base), the 8B/7B distills against same-family instruct models (their real bases are Llama-3.1-8B base and
Qwen2.5-Math-7B: the pairing is a reference, not base vs distill).

    python scripts/reproduce_r1_hidden_risks.py \\
        --data airbench=/data/air-bench-2024 \\
        --data cyberseceval-mitre=/data/PurpleLlama/CybersecurityBenchmarks/datasets/mitre/mitre_benchmark_100_per_category_with_augmentation.json \\
        --data cyberseceval-interpreter=/data/PurpleLlama/CybersecurityBenchmarks/datasets/interpreter/interpreter.json \\
        --data cyberseceval-prompt-injection=/data/PurpleLlama/CybersecurityBenchmarks/datasets/prompt_injection/prompt_injection.json \\
        --data wildguardtest-jailbreak=/data/wildguardtest
    python scripts/reproduce_r1_hidden_risks.py --smoke        # CPU check on the tiny model (CI)

Needs OPENAI_API_KEY (GPT-4o judge, o3-mini) and DEEPSEEK_API_KEY (R1). Config: scripts/configs/r1_hidden_risks.toml;
published cells: scripts/data/published/r1_hidden_risks.csv; OUT/comparison.csv puts them beside ours. What stays
unverified against the paper is printed first (UNVERIFIED: ...) and repeated in the report section. Full runs and
their cost: docs/reproduce.md.
"""

from _reproduce import main

UNVERIFIED = [
    "The paper's body (tables, figures, judge prompt, decoding settings) could not be read through the sources "
    "available here; the design follows issue 18's summary of it and every published value is marked unread.",
    "Judge: tracesafe's rubric judge (StrongREJECT rubric + Qi et al. harmfulness) run on GPT-4o, not the paper's "
    "GPT-4o prompt; harmfulness from the paper's reward models is not reproduced.",
    "Subsets: the paper's 377 MITRE prompts and 810 WildGuard jailbreak prompts were not matched to a selection "
    "rule (all 1,000 MITRE prompts and every adversarial harmful WildGuardTest prompt run here).",
    "CyberSecEval spear phishing (multi-turn) is not run; prompt injection is judged for harm by the rubric judge, "
    "not by CyberSecEval's judge_question.",
    "Small distills are compared with same-family instruct models; their real bases are Llama-3.1-8B (base) and "
    "Qwen2.5-Math-7B, and the paper's references for them were not read.",
    "Sampling (temperature 0.6, top_p 0.95, 8,192 tokens) is DeepSeek's recommendation, not read from the paper.",
]

if __name__ == "__main__":
    main("reproduce_r1_hidden_risks", ["r1_hidden_risks.toml"], __doc__, "r1_hidden_risks.csv", UNVERIFIED)
