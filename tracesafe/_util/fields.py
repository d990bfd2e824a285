"""The field names and values every reader of a user's table accepts (suites, importers, realign's
safety data), so a file that one stage reads, the others read the same way."""

from __future__ import annotations

from typing import Any

# Where the prompt is when no field is named: the first of these a row has. "text" comes last: in many
# datasets (Alpaca's) it is the whole formatted example, prompt and response together.
PROMPT_FIELDS = ("prompt", "instruction", "question", "text")

LABELS = {
    "harmful": "harmful", "unsafe": "harmful", "1": "harmful", "true": "harmful",
    "benign": "benign", "safe": "benign", "0": "benign", "false": "benign",
}  # fmt: skip


def parse_label(value: Any) -> str | None:
    """"harmful", "benign", or None for no value; ValueError (no location: the caller adds it) for any other."""
    if value is None or value == "":
        return None
    if isinstance(value, float) and value in (0, 1):  # a 0/1 column that a table reader typed as float
        value = int(value)
    key = str(value).strip().lower()
    if key not in LABELS:
        raise ValueError(f"label {value!r} is not one of harmful/unsafe/1 or benign/safe/0")
    return LABELS[key]
