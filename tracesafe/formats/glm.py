"""Zhipu GLM-4.5/4.6/4.7: <think>…</think>; a tool call (<tool_call>) ends an unclosed thought.
Recognised from the prompt by its [gMASK]<sop> prefix."""

from ._base import Format, register
from .think import THINK

register(Format("glm45", "<think>…</think>; <tool_call> ends an unclosed thought", pairs=(THINK,),
                tool_starts=("<tool_call>",), auto=False, prompt_signatures=("[gMASK]<sop>",), vllm="glm45, glm47"))  # fmt: skip
# vLLM's glm45_append_think returns the output unsplit with <think> prepended, for clients that split it
# themselves; the template opened the thought, so it is split here as such.
register(Format("glm45_append_think", "…</think>: the template opens the thought; <tool_call> ends an unclosed thought",
                pairs=(THINK,), tool_starts=("<tool_call>",), forced_open=True, auto=False, vllm="glm45_append_think"))  # fmt: skip
