"""Baidu ERNIE-4.5 thinking: the template opens the thought; the model writes only </think>."""

from ._base import Format, register
from .think import THINK

register(Format("ernie45", "…</think>: the template opens the thought", pairs=(THINK,), forced_open=True,
                auto=False, vllm="ernie45"))  # fmt: skip
