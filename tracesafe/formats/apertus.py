"""Swiss AI Apertus: <|inner_prefix|>…<|inner_suffix|>. With this format a literal <think> is plain text
(its tokenizer maps <think> to the inner pair on input only)."""

from ._base import Format, Pair, register

register(Format("apertus", "<|inner_prefix|>…<|inner_suffix|>; <think> is plain text",
                pairs=(Pair(("<|inner_prefix|>",), ("<|inner_suffix|>",)),), vllm="apertus"))  # fmt: skip
