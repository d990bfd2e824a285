"""K2-Horizon: a thought marker per reasoning effort (<ifm|think>, <ifm|think_fast>, <ifm|think_faster>,
each with its closing </ifm|…>); the template opens it, and <ifm|tool_calls> ends an unclosed thought."""

from ._base import Format, Pair, register

OPENS = ("<ifm|think>", "<ifm|think_fast>", "<ifm|think_faster>")

register(Format("k2_horizon", "<ifm|think…>…</ifm|think…> (per effort), forced opener; <ifm|tool_calls> ends the thought",
                pairs=(Pair(OPENS, tuple(o.replace("<", "</", 1) for o in OPENS)),), tool_starts=("<ifm|tool_calls>",),
                forced_open=True, vllm="k2_horizon"))  # fmt: skip
