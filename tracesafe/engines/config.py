"""How an engine loads a model: one declaration for generation and the model judges, and the one place
vLLM's engine arguments are built from it (offline engine and Ray replicas alike)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class EngineConfig:
    dtype: str = "auto"
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    data_parallel_size: int = 1  # vLLM data parallelism; on Ray, the number of replicas
    max_model_len: int | None = None  # None: the model's own context
    gpu_memory_utilization: float | None = None  # None: 0.9 on GPU, 0.2 on CPU (where it reserves RAM)
    enable_prefix_caching: bool = True
    enforce_eager: bool = False  # vLLM: skip graph capture / compilation (faster start, CPU tests)
    trust_remote_code: bool = False
    revision: str | None = None
    seed: int = 0
    # Engine-specific knobs (-E KEY=VALUE, engine_options in run configs), applied last, as they are.
    options: dict[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, not {self.dtype!r}")
        for name in ("tensor_parallel_size", "pipeline_parallel_size", "data_parallel_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, not {getattr(self, name)}")
        if self.max_model_len is not None and self.max_model_len < 1:
            raise ValueError(f"max_model_len must be >= 1, not {self.max_model_len}")
        if self.gpu_memory_utilization is not None and not 0 < self.gpu_memory_utilization <= 1:
            raise ValueError(f"gpu_memory_utilization must be in (0, 1], not {self.gpu_memory_utilization}")


DTYPES = ("auto", "float16", "bfloat16", "float32", "half", "float")  # what vLLM and torch both name


def vllm_on_cpu() -> bool:
    from vllm.platforms import current_platform

    return current_platform.is_cpu()


def memory_share(requested: float | None, on_cpu: bool) -> float:
    """vLLM's ``gpu_memory_utilization``: as requested, else 0.9 of a GPU, or 0.2 on CPU, where vLLM-CPU
    reserves that share of RAM for the KV cache."""
    return requested or (0.2 if on_cpu else 0.9)


def vllm_engine_args(cfg: EngineConfig, *, on_cpu: bool, sampled: bool) -> dict[str, Any]:
    """vLLM engine arguments of one engine (data parallelism is the caller's: vLLM's own or Ray replicas).
    ``sampled``: requests will sample with per-request seeds."""
    kwargs: dict[str, Any] = dict(
        dtype=cfg.dtype,
        tensor_parallel_size=cfg.tensor_parallel_size,
        pipeline_parallel_size=cfg.pipeline_parallel_size,
        gpu_memory_utilization=memory_share(cfg.gpu_memory_utilization, on_cpu),
        enable_prefix_caching=cfg.enable_prefix_caching,
        enforce_eager=cfg.enforce_eager,
        trust_remote_code=cfg.trust_remote_code,
        seed=cfg.seed,
    )
    if cfg.max_model_len:
        kwargs["max_model_len"] = cfg.max_model_len
    if cfg.revision:
        kwargs["revision"] = cfg.revision
    if sampled and on_cpu:
        # vLLM-CPU 0.32 dies ("CPU Generator does not use offset") when a seeded request's prefill is
        # chunked: the model runner rewinds the request's torch generator, which CPU generators cannot.
        # Unchunked, vLLM raises max_num_batched_tokens to the context length itself.
        kwargs["enable_chunked_prefill"] = False
    return {**kwargs, **cfg.options}


@contextlib.contextmanager
def options_checked(engine: str, cfg: EngineConfig) -> Iterator[None]:
    """The engine library's refusal of a ``-E`` option (a TypeError naming the keyword, as vLLM's EngineArgs
    and transformers' model constructors raise it) as one ValueError naming the option: bad input, not a crash."""
    try:
        yield
    except TypeError as e:
        bad = [k for k in cfg.options if k in str(e)]
        if not bad:
            raise
        raise ValueError(f"the {engine} engine does not take the engine option -E {bad[0]}: {e}") from None
