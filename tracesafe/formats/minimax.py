"""MiniMax-M2: the template opens the thought; the model writes only </think>. MiniMax-M1 writes both; MiniMax-M3 uses <mm:think>."""

from ._base import Format, Pair, register
from .think import THINK

register(Format("minimax_m2", "…</think>: the template opens the thought", pairs=(THINK,), forced_open=True,
                auto=False, vllm="minimax_m2"))  # fmt: skip
# MiniMax-M1 writes both markers; text without them is answer.
register(Format("minimax_m1", "<think>…</think>", pairs=(THINK,), auto=False, vllm="minimax_m1"))
# MiniMax-M3: <mm:think>…</mm:think>; the template opens the thought when thinking_mode is "enabled".
register(Format("minimax_m3", "<mm:think>…</mm:think>; forced opener with thinking_mode: enabled",
                pairs=(Pair(("<mm:think>",), ("</mm:think>",)),), forced_open=True,
                forced_when=lambda kw: kw.get("thinking_mode") == "enabled", vllm="minimax_m3"))  # fmt: skip
