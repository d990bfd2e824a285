"""Qwen3 / Qwen3.5 thinking (and QwQ): the template opens the thought, the model writes only </think>;
a tool call (<tool_call>) ends an unclosed thought; ``enable_thinking: false`` turns thinking off.
Not recognised from the prompt: its ChatML tokens are shared with models that do not think."""

from ._base import Format, register
from .think import THINK

register(Format("qwen3", "…</think>: the template opens the thought; <tool_call> ends it", pairs=(THINK,),
                forced_open=True, tool_starts=("<tool_call>",), auto=False, vllm="qwen3"))  # fmt: skip
