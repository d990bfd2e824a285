"""Cohere Command A reasoning: <|START_THINKING|>…<|END_THINKING|>, the answer in
<|START_RESPONSE|>…<|END_RESPONSE|>; a tool plan <|START_ACTION|>… stays in the answer. Citations
(<co>…</co: …>) are kept as written."""

from ._base import Format, Pair, register

register(Format("cohere", "<|START_THINKING|>…<|END_THINKING|>, answer in <|START_RESPONSE|>…<|END_RESPONSE|>",
                pairs=(Pair(("<|START_THINKING|>",), ("<|END_THINKING|>",)),),
                answer_block=("<|START_RESPONSE|>", "<|END_RESPONSE|>"), tool_starts=("<|START_ACTION|>",),
                vllm="cohere_command3, cohere_command4"))  # fmt: skip
