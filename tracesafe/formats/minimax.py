"""MiniMax-M2: the template opens the thought; the model writes only </think>. MiniMax-M1 writes both."""

from ._base import Format, register
from .think import THINK

register(Format("minimax_m2", "…</think>: the template opens the thought", pairs=(THINK,), forced_open=True,
                auto=False, vllm="minimax_m2"))  # fmt: skip
# MiniMax-M1 writes both markers; text without them is answer.
register(Format("minimax_m1", "<think>…</think>", pairs=(THINK,), auto=False, vllm="minimax_m1"))
