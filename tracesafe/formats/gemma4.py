"""Google Gemma 4 thinking: <|channel>thought\n…<channel|> (``thought\n`` is the channel's role label, not
thinking); <|tool_call> ends an unclosed thought. vLLM's gemma4 parser keeps text before <|channel> as
content, so this family does too. ``enable_thinking`` switches thinking on."""

from ._base import Format, Pair, register

register(Format("gemma4", "<|channel>thought …<channel|>; text before <|channel> is answer; <|tool_call> ends the thought",
                pairs=(Pair(("<|channel>thought\n", "<|channel>"), ("<channel|>",)),), tool_starts=("<|tool_call>",),
                prefix_is_content=True, prompt_signatures=("<|turn>model",), vllm="gemma4"))  # fmt: skip
