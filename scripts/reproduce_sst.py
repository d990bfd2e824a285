"""Reproduce SimpleSafetyTests (Vidgen et al., 2023, arXiv:2311.08370) for reasoning models: the 100 prompts
with and without a safety-emphasising system prompt, unsafe rate per harm area, for thinking and answer.

    python scripts/reproduce_sst.py --set judge.judge_model=/models/Llama-Guard-3-8B
    python scripts/reproduce_sst.py --smoke

Configs: scripts/configs/sst_plain.toml and sst_safety_prompt.toml; their runs are compared side by side
(compare/). by_category.csv has the per-harm-area rates. OUT/comparison.csv lists the published cells
(scripts/data/published/sst.csv): SST publishes no number for reasoning models, so each is "not published".
Judge validation on human labels: `tracesafe judge-eval --judge NAME --gold FILE` (see docs/judges.md).
"""

from _reproduce import main

UNVERIFIED = [
    "SST's own results table was not read here, and SST evaluated no reasoning model: there is no published "
    "number to compare these runs with.",
    "The safety-emphasising system prompt is Mistral AI's published guardrail prompt, not checked against the "
    "one SST used.",
]

if __name__ == "__main__":
    main("reproduce_sst", ["sst_plain.toml", "sst_safety_prompt.toml"], __doc__, "sst.csv", UNVERIFIED)
