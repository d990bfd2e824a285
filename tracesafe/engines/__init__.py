"""Model engines: one layer for the model under test (generation) and the grader (the model judges).

An engine (``base.Engine``) renders chat templates, counts tokens, runs sampled requests with a completion
callback (``run``) and decodes rendered prompts greedily with top logprobs (``greedy``); it describes itself
for provenance (``info``) and is closed by whoever opened it (``with get_engine(...) as eng:``).
Built-in engines, one module each: ``vllm`` (offline vLLM), ``hf`` (transformers), ``ray`` (vLLM replicas
through Ray Data), ``openai`` (any OpenAI-compatible server). Their packages are imported when an engine is
created, never when this package is.

Shared pieces: ``config.EngineConfig`` (dtype, parallelism, memory share, eager, prefix caching,
trust_remote_code, revision, seed) and the one builder of vLLM's engine arguments; ``weights`` (the one
weight resolver and ``fingerprint``, written on traces as ``model_hash`` and on verdicts as
``judge_config.weights``); ``openai_client.Endpoint`` (the official SDK with a per-attempt deadline, checked
replies, redaction); ``packages.require`` (a missing optional package names its pip command);
``registry.EnginePool`` (engines a caller shares among its users, e.g. judges on one model, closed together).

To add an engine: write a module with a class deriving ``base.BaseEngine`` whose constructor takes
``(model, config: EngineConfig, **its_options)`` and which implements ``run``, ``greedy`` (or
``_greedy_ids``), ``info`` and ``close`` (importing its packages inside, via ``require``); decorate it with
``@register_engine("name")``; list the module in ``registry._REGISTRY`` (built-in) or publish it under the
``tracesafe.engines`` entry-point group (third party). tests/test_engine_contract.py then checks it.
"""

from .base import BaseEngine, Completion, Engine, Request
from .config import EngineConfig, vllm_engine_args
from .packages import MissingPackage, require
from .registry import (
           EnginePool,
           EngineSpec,
           default_engine,
           engine_class,
           get_engine,
           list_engines,
           register_engine,
)
from .weights import fingerprint, model_hash, model_identity, resolve_weights

__all__ = ["BaseEngine", "Completion", "Engine", "EngineConfig", "EnginePool", "EngineSpec", "MissingPackage", "Request",
           "default_engine", "engine_class", "fingerprint", "get_engine", "list_engines", "model_hash",
           "model_identity", "register_engine", "require", "resolve_weights", "vllm_engine_args"]  # fmt: skip
