"""AlphaAlign's verifiable safety reward, for scoring traces and as a TRL ``GRPOTrainer`` reward function.

Source: Zhang, Zhang, Zhang, Sheng, Chen, Liang, Wang, "AlphaAlign: Incentivizing Safety Alignment with
Extremely Simplified Reinforcement Learning", arXiv:2507.14987 (ICLR 2026), Sections 2.3, 3.1, 3.2::

    R_s(x, o_i) = r_f V_f(o_i) + r_a V_r(y_i)     x harmful                      (Eq. 5)
                  r_f V_f(o_i) - r_a V_r(y_i)     x benign
    R_h(x_b, o_i, {o_1..o_n}) = max(r~_i, 0) if V_r(y_i) = 0 else 0,
                  r~_i = (r_i - mean(r)) / std(r),  r_i = R_r(x_b, y_i)           (Eq. 6)
    R = R_s                for harmful prompts; R_s + R_h for benign prompts      (Eq. 7)

``V_f`` is the format verifier (safety reasoning before the final answer), ``V_r`` the refusal verifier
on the final answer ``y``, ``R_r`` a helpfulness reward model and ``{o_1..o_n}`` the rollouts of one
prompt. The paper gives no values for ``r_f``/``r_a`` in the text we could read (they would be in its
Appendix B); both default to 1.0, the equal format/answer weighting of rule-based RLVR rewards, which
also keeps ``R_s`` on the scale of the z-scored ``R_h``. ``V_r`` is the paper's refusal patterns
(Appendix B.1, :func:`paper_refusal`); :func:`judge_refusal_detector` (the project's refusal judge,
``tracesafe.judges.refusal``) is an option, not comparable with the paper.

Two output formats:

- ``think`` (default): the trace's own thinking, separated by ``tracesafe.split.split_text``.
  ``V_f = 1`` when the split is ``complete`` with a non-empty answer AND the thinking reasons about
  safety by the criterion in :func:`mentions_safety` (the paper's template forces a safety-reasoning
  block; a reasoning model's free thinking does not, so the content is checked instead).
- ``alphaalign``: the paper's template (Figure 2): ``V_f`` is its regex
  ``<safety_reasoning>.*</safety_reasoning>.*<answer>.*</answer>`` (Appendix B.2, matched with DOTALL),
  ``y`` is the ``<answer>`` content; the tag alone is the safety-reasoning criterion, as in the paper.

Modules: ``alphaalign`` (the verifiers and the reward), ``grpo`` (TRL reward function, reward-model
scorer), ``files`` (labels in, reward records out).
"""

from .alphaalign import (
    ALPHAALIGN_REFUSAL_PATTERNS,
    REWARD_SCHEMA,
    HelpfulnessScorer,
    Parsed,
    RefusalDetector,
    RewardParams,
    RewardParts,
    judge_refusal_detector,
    mentions_safety,
    normalise_groups,
    paper_refusal,
    parse,
    score,
)
from .files import load_labels, reward_file, summarise
from .grpo import AlphaAlignReward, RewardModelScorer, alphaalign_reward

__all__ = [
    "ALPHAALIGN_REFUSAL_PATTERNS", "REWARD_SCHEMA", "AlphaAlignReward", "HelpfulnessScorer", "Parsed",
    "RefusalDetector", "RewardModelScorer", "RewardParams", "RewardParts", "alphaalign_reward",
    "judge_refusal_detector", "load_labels", "mentions_safety", "normalise_groups", "paper_refusal", "parse",
    "reward_file", "score", "summarise",
]  # fmt: skip
