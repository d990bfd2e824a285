"""StepFun Step3: output is thinking until </think> (the template opens the thought)."""

from ._base import Format, register
from .think import THINK

register(Format("step3", "…</think>: the template opens the thought", pairs=(THINK,), forced_open=True,
                auto=False, vllm="step3"))  # fmt: skip
