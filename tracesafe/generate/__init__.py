"""Generation: capture full reasoning traces from the model under test on any registered engine
(tracesafe.engines: vLLM offline, an OpenAI-compatible server, transformers, Ray), split and written as
they finish, resumable by trace id."""

from ..engines.base import Completion, Request
from .config import (
           THINKING_MODES,
           ClientConfig,
           GenerateConfig,
           SamplingConfig,
           Selection,
)
from .core import Job, generate, open_engine, select_prompts

__all__ = ["THINKING_MODES", "ClientConfig", "Completion", "GenerateConfig", "Job", "Request", "SamplingConfig", "Selection",
           "generate", "open_engine", "select_prompts"]  # fmt: skip
