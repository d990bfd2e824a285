"""StepFun Step3 and Step-3.5: output is thinking until </think> (the template opens the thought).
Step-3.5's parser keeps text before a mid-text <think> as answer, so ``step3p5`` does too."""

from ._base import Format, register
from .think import THINK

register(Format("step3", "…</think>: the template opens the thought", pairs=(THINK,), forced_open=True,
                auto=False, vllm="step3"))  # fmt: skip
register(Format("step3p5", "…</think>: the template opens the thought; text before <think> is answer", pairs=(THINK,),
                forced_open=True, prefix_is_content=True, auto=False, vllm="step3p5"))  # fmt: skip
