"""Upstage Solar-Open2: the template writes <|think:start|> and leaves the thought open at reasoning_effort
medium, high, xhigh or unset (the template's default, high); other efforts close it, so output without
<|think:end|> is answer. <|tool_call:start|> ends an unclosed thought."""

from ._base import Format, Pair, register

OPEN_EFFORTS = (None, "medium", "high", "xhigh")

register(Format("solar_open2", "…<|think:end|>: the template opens the thought (per reasoning_effort)",
                pairs=(Pair(("<|think:start|>",), ("<|think:end|>",)),), tool_starts=("<|tool_call:start|>",),
                forced_open=True, forced_when=lambda kw: kw.get("reasoning_effort") in OPEN_EFFORTS,
                vllm="solar_open2"))  # fmt: skip
