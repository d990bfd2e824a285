"""Generation: capture full reasoning traces from the model under test on any registered engine
(tracesafe.engines: vLLM offline, an OpenAI-compatible server, transformers, Ray), split and written as
they finish, resumable by trace id."""

from ..engines.base import Completion, Request
from .core import (
    THINKING_MODES,
    GenerateConfig,
    Job,
    generate,
    open_engine,
    select_prompts,
)

__all__ = ["THINKING_MODES", "Completion", "GenerateConfig", "Job", "Request", "generate", "open_engine", "select_prompts"]
