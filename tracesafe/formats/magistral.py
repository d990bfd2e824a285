"""Mistral Magistral: [THINK]…[/THINK] (special tokens, decoded as text). vLLM's mistral parser keeps text
before [THINK] as answer, so this family does too."""

from ._base import Format, Pair, register

register(Format("magistral", "[THINK]…[/THINK]; text before [THINK] is answer", pairs=(Pair(("[THINK]",), ("[/THINK]",)),),
                prefix_is_content=True, vllm="mistral"))  # fmt: skip
