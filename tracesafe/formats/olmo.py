"""AllenAI OLMo-3 Think: <think>…</think>, the opener usually written by the model."""

from ._base import Format, register
from .think import THINK

register(Format("olmo3", "<think>…</think>", pairs=(THINK,), auto=False, vllm="olmo3"))
