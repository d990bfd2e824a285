"""Moonshot Kimi K2 and K2.5 thinking: <think>…</think>, the opener may be implicit, and
<|tool_calls_section_begin|> ends the thought. ``thinking: false`` in chat_template_kwargs turns it off.
Recognised from the prompt by its role separator <|im_middle|>."""

from ._base import Format, register
from .think import THINK

register(Format("kimi_k2", "<think>…</think>, implicit opener; a tool-call section ends the thought", pairs=(THINK,),
                tool_starts=("<|tool_calls_section_begin|>",), forced_open=True, auto=False,
                prompt_signatures=("<|im_middle|>",), vllm="kimi_k2"))  # fmt: skip
register(Format("kimi_k25", "<think>…</think>, implicit opener; a tool-call section or call ends the thought", pairs=(THINK,),
                tool_starts=("<|tool_calls_section_begin|>", "<|tool_call_begin|>"), forced_open=True, auto=False,
                vllm="kimi_k25"))  # fmt: skip
