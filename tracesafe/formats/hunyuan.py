"""Tencent Hunyuan-A13B: <think>…</think> then the answer in <answer>…</answer>; and Hy3, Hy4."""

from ._base import Format, register
from .think import THINK

register(Format("hunyuan_a13b", "<think>…</think><answer>…</answer>", pairs=(THINK,), answer_block=("<answer>", "</answer>"),
                auto=False, vllm="hunyuan_a13b"))  # fmt: skip
# Tencent Hy3 (Hunyuan V3): the template opens the thought at reasoning_effort high or low; without an
# effort, or with no_think, output is answer.
register(Format("hy_v3", "…</think>: the template opens the thought when reasoning_effort is set (not no_think)",
                pairs=(THINK,), forced_open=True, forced_when=lambda kw: kw.get("reasoning_effort") not in (None, "no_think", "none"),
                auto=False, vllm="hy_v3"))  # fmt: skip
# Hy4 (Hunyuan V4): the template opens the thought unless reasoning_effort is no_think (its default is high).
# Checkpoints whose think tokens carry a suffix (<think:…>) need the suffix-free markers to be split here.
register(Format("hy_v4", "…</think>: the template opens the thought unless reasoning_effort is no_think", pairs=(THINK,),
                forced_open=True, auto=False, vllm="hy_v4"))  # fmt: skip
