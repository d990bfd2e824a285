"""The <think>…</think> family (DeepSeek-R1 and distills, QwQ, Qwen3, and most open reasoning models),
plus the <thinking> and <reasoning> variants some fine-tunes and prompted models write.

``think`` is what auto-detection picks for these markers; ``deepseek_r1`` is the same markers with the
R1 template's forced opener (vLLM's deepseek_r1 parser reads text without markers as thinking)."""

from ._base import Format, Pair, register

THINK = Pair(("<think>",), ("</think>",))
VARIANTS = (THINK, Pair(("<thinking>",), ("</thinking>",)), Pair(("<reasoning>",), ("</reasoning>",)))
# Tool-call starts that end an unclosed thought (Qwen3/Hermes/GLM <tool_call>, Kimi's section).
TOOL_STARTS = ("<tool_call>", "<|tool_calls_section_begin|>")

register(Format("think", "<think>/<thinking>/<reasoning> tags; a tool call ends an unclosed thought",
                pairs=VARIANTS, tool_starts=TOOL_STARTS, vllm="qwen3, deepseek_r1 (markers)"))  # fmt: skip
register(Format("deepseek_r1", "<think>…</think>; the R1 template forces the opener", pairs=(THINK,),
                forced_open=True, auto=False, vllm="deepseek_r1"))  # fmt: skip
# DeepSeek-V3.1/V3.2/V4: the template opens the thought only with ``thinking: true`` (off by default).
register(Format("deepseek_v3", "<think>…</think>; the template forces the opener when thinking: true", pairs=(THINK,),
                forced_open=True, forced_when=lambda kw: bool(kw.get("thinking")), auto=False, vllm="deepseek_v3"))  # fmt: skip
register(Format("deepseek_v4", "as deepseek_v3; a DSML tool call (<｜DSML｜tool_calls>) ends an unclosed thought", pairs=(THINK,),
                tool_starts=("<｜DSML｜tool_calls>",), forced_open=True, forced_when=lambda kw: bool(kw.get("thinking")),
                auto=False, vllm="deepseek_v4"))  # fmt: skip
