"""Tencent Hunyuan-A13B: <think>…</think> then the answer in <answer>…</answer>."""

from ._base import Format, register
from .think import THINK

register(Format("hunyuan_a13b", "<think>…</think><answer>…</answer>", pairs=(THINK,), answer_block=("<answer>", "</answer>"),
                auto=False, vllm="hunyuan_a13b"))  # fmt: skip
