"""Preferred Networks PLaMo-3: <|plamo:begin_think:plamo|>…<|plamo:end_think:plamo|>, the opener
optional (output without markers is thinking); ``enable_thinking: false`` turns it off. Text after the
end-of-turn tag <|plamo:tag|> is kept (vLLM cuts it)."""

from ._base import Format, Pair, register

register(Format("plamo3", "<|plamo:begin_think:plamo|>…<|plamo:end_think:plamo|>, opener optional",
                pairs=(Pair(("<|plamo:begin_think:plamo|>",), ("<|plamo:end_think:plamo|>",)),), forced_open=True,
                vllm="plamo3"))  # fmt: skip
