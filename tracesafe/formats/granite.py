"""IBM Granite 3.x thinking: plain-language markers "Here is my thought process:" … "Here is my
response:" (some quantized models write "Here's"). Auto-detected only when the text starts with one.
Granite 4 thinking writes <think> tags (``granite_thinking``)."""

from ._base import Format, Pair, register
from .think import THINK

register(Format("granite", '"Here is my thought process:" … "Here is my response:"',
                pairs=(Pair(("Here is my thought process:", "Here's my thought process:"),
                            ("Here is my response:", "Here's my response:")),),
                start_only=True, vllm="granite"))  # fmt: skip
# Granite 4 thinking models: <think>…</think>, the template opens the thought unless enable_thinking: false.
register(Format("granite_thinking", "<think>…</think>, forced opener; enable_thinking: false turns it off", pairs=(THINK,),
                forced_open=True, auto=False, vllm="granite_thinking_parser"))  # fmt: skip
