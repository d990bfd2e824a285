"""Reasoning-output formats, one module per model family, registered by name (like vLLM's
ReasoningParserManager). ``tracesafe formats list`` prints them; ``tracesafe split --format NAME``
(or ``split_text(..., format=NAME)``) forces one; by default the family is detected from the rendered
prompt (its chat-template tokens, or a marker it ends with) and then from the first marker in the text.

To add a family: write ``tracesafe/formats/<family>.py`` that builds a :class:`Format` (set ``pairs``
and whichever of ``answer_block``, ``tool_starts``, ``forced_open`` (and ``forced_when``, for a template
that opens the thought only under a chat-template switch), ``prefix_is_content``, ``auto``, ``prompt_signatures``,
``prompt_tail`` apply; subclass and override ``split`` only for a different structure, as
``harmony`` does) and passes it to :func:`register`; add the module name to ``FAMILIES`` below; add
its cases to ``tests/data/formats/`` (vLLM's test cases for the family go in ``vllm_cases.jsonl``);
list it in the formats table of docs/formats.md.
"""

from importlib import import_module

from ._base import Format, Pair, Split, all_formats, get, register, thinking_off

# Import order is auto-detection priority for markers at the same position (none overlap today).
FAMILIES = ("think", "harmony", "sky_t1", "seed_oss", "magistral", "granite", "cohere", "apertus", "hunyuan",
            "kimi", "glm", "minimax", "ernie", "step", "qwen", "olmo", "gemma4", "plamo", "solar", "hyperclovax", "nemotron", "k2_horizon")  # fmt: skip
for _family in FAMILIES:
    import_module(f"{__name__}.{_family}")

__all__ = ["Format", "Pair", "Split", "all_formats", "get", "register", "thinking_off"]
