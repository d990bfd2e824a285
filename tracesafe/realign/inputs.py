"""What realignment is given: the safety data (harmful prompt + safe response pairs) and the settings."""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .._util.fields import PROMPT_FIELDS

RESPONSE_FIELDS = ("response", "chosen", "safe_response", "output", "answer")
REJECTED_FIELDS = ("rejected", "unsafe_response")
DEFAULT_SINGLE_SCALING = 1.0
DEFAULT_MULTI_SCALING = 0.3  # the SOMF code's initial task-arithmetic weight for several models


@dataclass(frozen=True)
class SafetyExample:
    prompt: str
    response: str
    rejected: str | None = None
    where: str = ""  # FILE:LINE of the row, for errors about it


def load_safety_data(path: str | os.PathLike) -> list[SafetyExample]:
    """Harmful prompt + safe response pairs (optionally a ``rejected`` unsafe response) from JSONL/CSV."""
    from ..suites.rows import read_rows

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    out = []
    for lineno, row in read_rows(path):
        pf = next((f for f in PROMPT_FIELDS if isinstance(row.get(f), str) and row[f]), None)
        rf = next((f for f in RESPONSE_FIELDS if isinstance(row.get(f), str) and row[f]), None)
        if pf is None or rf is None:
            raise ValueError(
                f"{path}:{lineno}: needs a prompt ({'/'.join(PROMPT_FIELDS)}) and a safe response "
                f"({'/'.join(RESPONSE_FIELDS)})"
            )
        rej = next((row[f] for f in REJECTED_FIELDS if isinstance(row.get(f), str) and row[f]), None)
        out.append(SafetyExample(row[pf], row[rf], rej, f"{path}:{lineno}"))
    if not out:
        raise ValueError(f"{path}: no safety examples")
    rejected = sum(e.rejected is not None for e in out)
    if 0 < rejected < len(out):
        raise ValueError(f"{path}: {rejected} of {len(out)} rows have a rejected response; give it on all or none")
    return out


@dataclass
class RealignConfig:
    method: Literal["learned", "scored"] = "learned"
    # Fraction of masked entries put in the safety subspace (reverted). None: the paper's threshold
    # (learned: sigmoid(logit) < 0.5; scored: positive benefit). On our short CPU schedule the
    # threshold leaves the mask near p = 0.5 and the mean(m) rescale doubles the kept half of the task
    # vector, which undid realignment on the test models; a ratio ranks by the same scores instead.
    mask_ratio: float | None = 0.1
    scaling: float | None = None  # lambda for every task vector; None: 1.0 for one model, 0.3 for several
    rescale: bool = True  # divide the masked task vector by mean(m) per tensor, as SOMF does
    include: str | None = None  # regex: parameters the mask covers (default all)
    steps: int = 50
    lr: float = 1e-2
    batch_size: int = 4
    temperature: float = 0.5
    beta: float = 0.1  # DPO temperature, used when the data has rejected responses
    max_examples: int = 256
    max_length: int = 512
    seed: int = 0

    def __post_init__(self) -> None:
        """Refuse settings that would silently give a meaningless model (checked before any model loads)."""
        if self.method not in ("learned", "scored"):
            raise ValueError(f"unknown mask method {self.method!r} (learned, scored)")
        if self.mask_ratio is not None and not 0 <= self.mask_ratio <= 1:
            raise ValueError(f"mask ratio {self.mask_ratio} is not a fraction in [0, 1] (or -1: the paper's threshold)")
        for name in ("scaling", "lr", "temperature", "beta"):
            v = getattr(self, name)
            if v is not None and not (math.isfinite(v) and (v > 0 or name == "scaling")):
                raise ValueError(f"{name} {v} must be a finite number" + ("" if name == "scaling" else " above 0"))
        for name, least in (("steps", 1), ("batch_size", 1), ("max_examples", 1), ("max_length", 2)):
            if getattr(self, name) < least:
                raise ValueError(f"{name.replace('_', '-')} {getattr(self, name)} must be at least {least}")
        if self.include is not None:
            try:
                re.compile(self.include)
            except re.error as e:
                raise ValueError(f"include {self.include!r} is not a regular expression ({e})") from None


@dataclass
class RealignResult:
    masks: dict[str, Any]  # name -> bool tensor, True = keep the task vector
    params: dict[str, Any]  # name -> realigned tensor (float32)
    subspace_entries: int  # entries returned to the aligned weights
    masked_entries: int  # entries the mask covers
    losses: dict[str, float] = field(default_factory=dict)  # safety loss of aligned / fine-tuned / realigned
    train_losses: list[float] = field(default_factory=list)
