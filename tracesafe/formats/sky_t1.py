"""Sky-T1 / Bespoke-Stratos: <|begin_of_thought|>…<|end_of_thought|>, the answer wrapped in
<|begin_of_solution|>…<|end_of_solution|> (unwrapped when nothing else lies outside it)."""

from ._base import Format, Pair, register

register(Format("sky_t1", "<|begin_of_thought|>…<|end_of_thought|>, answer in <|begin_of_solution|>…",
                pairs=(Pair(("<|begin_of_thought|>",), ("<|end_of_thought|>",)),),
                answer_block=("<|begin_of_solution|>", "<|end_of_solution|>")))  # fmt: skip
