"""Engines by name: the registry, a spec naming one engine (what two users must agree on to share it), and
a caller-owned pool that opens engines on first use and closes them when its scope ends."""

from __future__ import annotations

import importlib.util
import inspect
from typing import Any, NamedTuple

from .._util.registry import Registry
from .base import BaseEngine, Engine
from .config import EngineConfig

_REGISTRY: Registry[type] = Registry(
    "engine",
    modules=("tracesafe.engines.vllm", "tracesafe.engines.hf", "tracesafe.engines.openai", "tracesafe.engines.ray"),
    entry_points="tracesafe.engines",
)


def register_engine(name: str):
    """Class decorator: register an engine class under ``name`` (its ``name`` attribute is set)."""

    def add(cls: type) -> type:
        cls.name = name
        return _REGISTRY.add(name, cls)

    return add


def engine_class(name: str) -> type[BaseEngine]:
    return _REGISTRY.get(name)


def list_engines() -> list[str]:
    return _REGISTRY.names()


def default_engine() -> str:
    """vLLM when it is installed, else transformers."""
    return "vllm" if importlib.util.find_spec("vllm") is not None else "hf"


def get_engine(name: str, model: str, config: EngineConfig | None = None, **options: Any) -> Engine:
    """A new engine (the caller closes it: ``with get_engine(...) as eng``). ``model``: resolved local weights
    for engines that load them, the served model's name otherwise; ``options``: the engine's own."""
    return engine_class(name)(model, config or EngineConfig(), **options)


class EngineSpec(NamedTuple):
    """One engine as a hashable value: equal specs may share one engine."""

    name: str
    model: str
    config: EngineConfig
    options: tuple[tuple[str, Any], ...]

    @classmethod
    def of(cls, name: str, model: str, config: EngineConfig | None = None, **options: Any) -> EngineSpec:
        """The spec with those ``options`` the engine takes, so one set of options (a judge's, a run's) serves
        every engine; an unknown engine name fails here."""
        params = inspect.signature(engine_class(name).__init__).parameters
        kept = tuple(sorted((k, v) for k, v in options.items() if k in params))
        return cls(name, model, config or EngineConfig(), kept)

    @property
    def engine(self) -> type[BaseEngine]:
        return engine_class(self.name)

    def open(self) -> Engine:
        return get_engine(self.name, self.model, self.config, **dict(self.options))


class EnginePool:
    """Engines a caller shares among its users (e.g. two judges on one model in one judge run): ``get(spec)``
    opens the spec's engine on first use; opening one with local weights closes the other local ones first,
    so one model's weights are in memory at a time. Everything is closed when the ``with`` block ends."""

    def __init__(self) -> None:
        self._open: dict[EngineSpec, Engine] = {}

    def get(self, spec: EngineSpec) -> Engine:
        eng = self._open.get(spec)
        if eng is None:
            if spec.engine.local_weights:
                for other in [s for s in self._open if s.engine.local_weights]:
                    self._open.pop(other).close()
            eng = self._open[spec] = spec.open()
        return eng

    def close(self) -> None:
        while self._open:
            self._open.popitem()[1].close()

    def __enter__(self) -> EnginePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
