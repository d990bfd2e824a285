"""Moonshot Kimi K2, K2.5 (and K3, below) thinking: <think>…</think>, the opener may be implicit, and
<|tool_calls_section_begin|> ends the thought. ``thinking: false`` in chat_template_kwargs turns it off.
Recognised from the prompt by its role separator <|im_middle|>."""

from ._base import Format, Pair, register
from .think import THINK

register(Format("kimi_k2", "<think>…</think>, implicit opener; a tool-call section ends the thought", pairs=(THINK,),
                tool_starts=("<|tool_calls_section_begin|>",), forced_open=True, auto=False,
                prompt_signatures=("<|im_middle|>",), vllm="kimi_k2"))  # fmt: skip
register(Format("kimi_k25", "<think>…</think>, implicit opener; a tool-call section or call ends the thought", pairs=(THINK,),
                tool_starts=("<|tool_calls_section_begin|>", "<|tool_call_begin|>"), forced_open=True, auto=False,
                vllm="kimi_k25"))  # fmt: skip
# Kimi K3 writes tagged channels: <|open|>think<|sep|>…<|close|>think<|sep|>, the answer in a response channel.
register(Format("kimi_k3", "<|open|>think<|sep|>…<|close|>think<|sep|>, forced opener, answer in the response channel",
                pairs=(Pair(("<|open|>think<|sep|>",), ("<|close|>think<|sep|>",)),),
                answer_block=("<|open|>response<|sep|>", "<|close|>response<|sep|>"), forced_open=True, vllm="kimi_k3"))  # fmt: skip
