"""Model engines: one layer for the model under test (generation) and the grader (model judges)."""

from .weights import fingerprint, model_hash, model_identity, resolve_weights

__all__ = ["fingerprint", "model_hash", "model_identity", "resolve_weights"]
