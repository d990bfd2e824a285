"""NVIDIA Nemotron 3 (Nano/Super) reasoning: <think>…</think>, the template opens the thought unless
``enable_thinking: false``."""

from ._base import Format, register
from .think import THINK

register(Format("nemotron_v3", "<think>…</think>, forced opener; enable_thinking: false turns it off", pairs=(THINK,),
                forced_open=True, auto=False, vllm="nemotron_v3"))  # fmt: skip
# The earlier Nemotron reasoning models write both markers; text without them is answer.
register(Format("nemotron", "<think>…</think>", pairs=(THINK,), auto=False, vllm="nemotron"))
