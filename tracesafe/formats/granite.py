"""IBM Granite 3.x thinking: plain-language markers "Here is my thought process:" … "Here is my
response:" (some quantized models write "Here's"). Auto-detected only when the text starts with one."""

from ._base import Format, Pair, register

register(Format("granite", '"Here is my thought process:" … "Here is my response:"',
                pairs=(Pair(("Here is my thought process:", "Here's my thought process:"),
                            ("Here is my response:", "Here's my response:")),),
                start_only=True, vllm="granite"))  # fmt: skip
