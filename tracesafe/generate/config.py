"""A generation run's settings, one declaration per concern: what a trace id hashes (SamplingConfig), which
prompts and how many samples (Selection), how the engine loads the model (EngineConfig, tracesafe.engines),
how the engine is driven (ClientConfig). The CLI, run configs and manifests use flat keys (``temperature``,
``shard``, ``dtype``, ``engine_options``); ``GenerateConfig.flat_fields`` maps each to its concern."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .. import formats
from .._util.provenance import sha256_text
from ..engines.config import EngineConfig

THINKING_MODES = ("normal", "zerothink", "lessthink", "morethink")


@dataclass(frozen=True)
class SamplingConfig:
    """What a trace depends on, and so what its id hashes. Defaults are the published ones for R1-style
    models (DeepSeek-R1 model card: temperature 0.6, top_p 0.95, no system prompt)."""

    max_tokens: int | None = None  # None: up to the model's context
    temperature: float = 0.6
    top_p: float = 0.95
    top_k: int = -1
    seed: int = 0
    system_prompt: str | None = None
    chat_template_kwargs: dict[str, Any] = field(default_factory=dict, hash=False)
    thinking_mode: str = "normal"
    think_budget: int = 10000  # SafeChain morethink_batch default
    think_retries: int = 10  # SafeChain enforce_num default

    def __post_init__(self) -> None:
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1 (or unset: up to the model's context), not {self.max_tokens}")
        if not (self.temperature >= 0 and math.isfinite(self.temperature)):  # nan compares false: checked as it is
            raise ValueError(f"temperature must be a finite number >= 0, not {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], not {self.top_p}")
        if self.top_k < -1:
            raise ValueError(f"top_k must be >= 1, or 0 or -1 (no top-k), not {self.top_k}")
        if not isinstance(self.chat_template_kwargs, dict):
            raise ValueError(f"chat_template_kwargs must be a JSON object / table, not {self.chat_template_kwargs!r}")
        if self.think_budget < 1 or self.think_retries < 0:
            raise ValueError(f"think_budget must be >= 1 and think_retries >= 0, not {self.think_budget} and {self.think_retries}")
        if self.thinking_mode not in THINKING_MODES:
            raise ValueError(f"thinking_mode must be one of {', '.join(THINKING_MODES)}, not {self.thinking_mode!r}")
        if self.thinking_mode == "morethink" and self.max_tokens is not None and self.max_tokens <= self.think_budget:
            raise ValueError(f"morethink: max_tokens ({self.max_tokens}) must exceed think_budget ({self.think_budget}); "
                             "as SafeChain, the answer gets max_tokens - think_budget tokens")  # fmt: skip

    def params(self) -> dict[str, Any]:
        """The parameters a trace id depends on (thinking mode is hashed separately). Keys and order are part
        of every trace id: changing them changes the ids of existing traces, which resume would then redo."""
        p = {"temperature": self.temperature, "top_p": self.top_p, "top_k": self.top_k, "max_tokens": self.max_tokens,
             "seed": self.seed, "system_prompt": self.system_prompt, "chat_template_kwargs": self.chat_template_kwargs}  # fmt: skip
        if self.thinking_mode == "morethink":
            p.update(think_budget=self.think_budget, think_retries=self.think_retries)
        return p


def parse_shard(shard: str) -> tuple[int, int]:
    try:
        i, n = (int(x) for x in shard.split("/"))
    except ValueError:
        raise ValueError(f"--shard must be I/N (e.g. 0/4), got {shard!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise ValueError(f"--shard {shard!r}: need 0 <= I < N")
    return i, n


@dataclass(frozen=True)
class Selection:
    """Which prompts, and how many samples of each."""

    samples: int = 1
    limit: int = 0
    shard: str | None = None  # "I/N"

    def __post_init__(self) -> None:
        if self.samples < 1:
            raise ValueError("samples must be >= 1")
        if self.limit < 0:
            raise ValueError(f"limit must be >= 0 (0: every prompt), not {self.limit}")
        if self.shard is not None:
            parse_shard(self.shard)

    def select(self, prompts: list) -> list:
        """``limit`` first, then the shard: a prompt's shard depends on its id alone, so shards of one run
        partition the prompts whatever their order."""
        out = prompts[: self.limit] if self.limit else list(prompts)
        if self.shard:
            i, n = parse_shard(self.shard)
            out = [p for p in out if int(sha256_text(p.id), 16) % n == i]
        return out


@dataclass(frozen=True)
class ClientConfig:
    """How the engine is driven; each engine takes those it knows (tracesafe.engines.registry.EngineSpec.of)."""

    batch_size: int = 16  # hf and ray engines
    api_base: str | None = None  # openai engine
    api_key_env: str | None = None
    concurrency: int = 16
    request_timeout: float = 600.0
    max_retries: int = 6

    def __post_init__(self) -> None:
        for name in ("batch_size", "concurrency"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, not {getattr(self, name)}")
        if not (0 < self.request_timeout < math.inf) or self.max_retries < 0:
            raise ValueError(f"request_timeout must be > 0 and max_retries >= 0, not {self.request_timeout} and {self.max_retries}")


# Flat keys that are not a concern's field name: engine options are `engine_options`, and the engine's seed
# is the sampling seed, not a key of its own.
_RENAMED = {("engine", "options"): "engine_options"}
_DERIVED = {("engine", "seed")}


@dataclass
class GenerateConfig:
    """Every setting of a generation run, by concern. Build it from flat keys with ``from_flat``."""

    model: str
    backend: str = "vllm"
    reasoning_format: str | None = None  # split with this family (`tracesafe formats list`); None: detect
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    selection: Selection = field(default_factory=Selection)
    engine: EngineConfig = field(default_factory=EngineConfig)  # its seed is the sampling seed
    client: ClientConfig = field(default_factory=ClientConfig)

    CONCERNS: ClassVar[dict[str, type]] = {"sampling": SamplingConfig, "selection": Selection, "engine": EngineConfig, "client": ClientConfig}

    def __post_init__(self) -> None:
        if self.reasoning_format not in (None, "auto"):
            formats.get(self.reasoning_format)  # an unknown name fails before the model loads
        self.engine = dataclasses.replace(self.engine, seed=self.sampling.seed)

    @classmethod
    def flat_fields(cls) -> dict[str, tuple[str | None, dataclasses.Field]]:
        """Flat key -> (its concern, or None for a field of GenerateConfig itself; its dataclass field)."""
        out: dict[str, tuple[str | None, dataclasses.Field]] = {}
        for f in dataclasses.fields(cls):
            if f.name not in cls.CONCERNS:
                out[f.name] = (None, f)
        for concern, sub in cls.CONCERNS.items():
            for f in dataclasses.fields(sub):
                if (concern, f.name) not in _DERIVED:
                    out[_RENAMED.get((concern, f.name), f.name)] = (concern, f)
        return out

    @classmethod
    def flat_types(cls) -> dict[str, Any]:
        """Flat key -> its type hint (for checking run-config tables)."""
        import typing

        hints = {c: typing.get_type_hints(sub) for c, sub in cls.CONCERNS.items()} | {None: typing.get_type_hints(cls)}
        return {k: hints[c][f.name] for k, (c, f) in cls.flat_fields().items()}

    @classmethod
    def flat_defaults(cls) -> dict[str, Any]:
        """Flat key -> default, for those that have one (the CLI's defaults)."""
        out = {}
        for k, (_, f) in cls.flat_fields().items():
            if f.default is not dataclasses.MISSING:
                out[k] = f.default
            elif f.default_factory is not dataclasses.MISSING:
                out[k] = f.default_factory()
        return out

    @classmethod
    def from_flat(cls, **kw: Any) -> GenerateConfig:
        """``GenerateConfig.from_flat(model="m", temperature=0.0, shard="0/4", dtype="float32")``: each key goes
        to its concern; an unknown key is a TypeError naming it, as a dataclass constructor's."""
        fields = cls.flat_fields()
        unknown = [k for k in kw if k not in fields]
        if unknown:
            raise TypeError(f"GenerateConfig.from_flat() got an unexpected keyword argument {unknown[0]!r}")
        parts: dict[str | None, dict[str, Any]] = {}
        for k, v in kw.items():
            concern, f = fields[k]
            parts.setdefault(concern, {})[f.name] = v
        concerns = {c: sub(**parts.get(c, {})) for c, sub in cls.CONCERNS.items()}
        return cls(**parts.get(None, {}), **concerns)

    def flat(self) -> dict[str, Any]:
        """The flat keys and their values (as the run config and the manifests have them)."""
        out = {}
        for k, (concern, f) in self.flat_fields().items():
            out[k] = getattr(self if concern is None else getattr(self, concern), f.name)
        return out
