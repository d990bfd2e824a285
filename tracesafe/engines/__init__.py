"""Model engines: what generation (the model under test) and the model judges (the grader) share.

- ``weights``: ``resolve_weights`` (a local directory or the HF cache, never a download) and the one
  ``fingerprint`` of local weights, written on traces (``model_hash``) and verdicts (``judge_config.weights``).
- ``config``: ``EngineConfig`` (dtype, parallelism, memory share, eager, prefix caching, trust_remote_code,
  revision, seed) and the one builder of vLLM's engine arguments from it.
- ``openai_client``: the one client for OpenAI-compatible servers (official ``openai`` SDK, its
  retries/backoff, a per-attempt deadline, checked replies, redaction).
- ``packages``: ``require(name)``: a missing optional package fails with the pip command that installs it.

The engines themselves still live with their users (``generate/*_backend.py``, ``judges/_models.py``).
"""

from .config import EngineConfig, vllm_engine_args
from .packages import MissingPackage, require
from .weights import fingerprint, model_hash, model_identity, resolve_weights

__all__ = ["EngineConfig", "MissingPackage", "fingerprint", "model_hash", "model_identity", "require", "resolve_weights",
           "vllm_engine_args"]  # fmt: skip
