"""ByteDance Seed-OSS: <seed:think>…</seed:think>; the model usually writes only the closing marker."""

from ._base import Format, Pair, register

register(Format("seed_oss", "<seed:think>…</seed:think>", pairs=(Pair(("<seed:think>",), ("</seed:think>",)),),
                forced_open=True, vllm="seed_oss"))  # fmt: skip
