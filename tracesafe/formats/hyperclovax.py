"""Naver HyperCLOVAX SEED Think. The 32B template opens <think> when ``thinking: true`` (the default is
off), so the model writes only </think>. The 14B model thinks after ``/think\n`` until its template's
turn boundary ``<|im_end|>\n<|im_start|>assistant``, opened by the template when ``force_reasoning: true``."""

from ._base import Format, Pair, register
from .think import THINK

register(Format("hyperclovax_seed_think", "…</think>: the template opens the thought when thinking: true", pairs=(THINK,),
                forced_open=True, forced_when=lambda kw: bool(kw.get("thinking")), auto=False,
                vllm="hyperclovax_seed_think"))  # fmt: skip
register(Format("hyperclovax_seed_think_14b", "/think …<|im_end|>\\n<|im_start|>assistant; forced by force_reasoning: true",
                pairs=(Pair(("/think\n",), ("<|im_end|>\n<|im_start|>assistant",)),), forced_open=True,
                forced_when=lambda kw: kw.get("force_reasoning") is True, auto=False, prompt_tail=False,
                vllm="hyperclovax_seed_think_14b"))  # fmt: skip
