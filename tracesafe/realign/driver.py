"""SOMF end to end: load the models, build the mask, fuse, and write the realigned model atomically."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .._util.atomic import atomic_output, output_lock, prepare_output
from .fusion import binarise, fuse, merge_task_vectors, named_params, task_vectors
from .inputs import (
    DEFAULT_MULTI_SCALING,
    DEFAULT_SINGLE_SCALING,
    RealignConfig,
    RealignResult,
    load_safety_data,
)
from .mask import encode, learn_mask, ref_logprobs, safety_loss, score_mask

MANIFEST = "realign.json"  # written into every realigned model: a folder holding it may be replaced by a new one


def _load(path, dtype):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=dtype)


def realign_models(aligned_model, finetuned_models, items, cfg: RealignConfig) -> RealignResult:
    """SOMF on loaded models (``items`` from :func:`encode`). Weights are handled in float32."""
    import torch

    if not finetuned_models:
        raise ValueError("give at least one fine-tuned model")
    if not items:
        raise ValueError("no safety examples")
    aligned_model.eval().requires_grad_(False)
    aligned = named_params(aligned_model)
    deltas = task_vectors(aligned, [named_params(m) for m in finetuned_models])
    scaling = cfg.scaling
    if scaling is None:
        scaling = DEFAULT_SINGLE_SCALING if len(deltas) == 1 else DEFAULT_MULTI_SCALING
    delta = merge_task_vectors(deltas, scaling)
    pattern = re.compile(cfg.include) if cfg.include else None
    names = [n for n in aligned if pattern is None or pattern.search(n)]
    if not names:
        raise ValueError(f"--include {cfg.include!r} matches no parameter")
    if cfg.method == "learned":
        keep_scores, train_losses = learn_mask(aligned_model, aligned, delta, names, items, cfg, cfg.rescale)
    else:  # "scored" (RealignConfig checks the method)
        keep_scores, train_losses = score_mask(aligned_model, aligned, delta, names, items, cfg), []
    # learned: keep where sigmoid(logit) >= 0.5; scored: keep where reverting has no first-order benefit.
    masks = binarise(keep_scores, mask_ratio=cfg.mask_ratio, threshold=0.0)
    params = fuse(aligned, delta, masks, cfg.rescale)
    with torch.no_grad():
        sub = items[: cfg.max_examples]
        ref = ref_logprobs(aligned_model, {n: aligned[n] + delta[n] for n in aligned}, sub)

        def evaluate(p):
            return float(safety_loss(aligned_model, p, sub, beta=cfg.beta, ref=ref))

        losses = {
            "aligned": evaluate(aligned),
            "finetuned": evaluate({n: aligned[n] + delta[n] for n in aligned}),
            "realigned": evaluate(params),
        }
    reverted = sum(int((~m).sum()) for m in masks.values())
    return RealignResult(masks, params, reverted, sum(m.numel() for m in masks.values()), losses, train_losses)


def realign(
    aligned: str | os.PathLike,
    finetuned: Sequence[str | os.PathLike],
    safety_data: str | os.PathLike,
    output: str | os.PathLike,
    cfg: RealignConfig = RealignConfig(),
    *,
    save_mask: bool = False,
) -> dict[str, Any]:
    """Realign fine-tuned model(s) against the aligned one; write a loadable transformers model to ``output``
    (safetensors weights in the aligned model's dtype, config, the first fine-tuned model's tokenizer,
    ``realign.json`` with the settings and safety losses, and ``mask.safetensors`` if asked). ``output`` is a
    new or empty folder, or an earlier realigned model's (replaced at the end)."""
    output = Path(output)
    # Before hours of work, not after: the output is checked and locked first, and held locked to the end.
    prepare_output(output, [aligned, *finetuned, safety_data], folder=True, marker=MANIFEST)
    with output_lock(output):
        return _realign(aligned, finetuned, safety_data, output, cfg, save_mask)


def _realign(aligned, finetuned, safety_data, output: Path, cfg: RealignConfig, save_mask: bool) -> dict[str, Any]:
    import torch
    from transformers import AutoConfig, AutoTokenizer

    t0 = time.time()
    torch.manual_seed(cfg.seed)
    examples = load_safety_data(safety_data)[: cfg.max_examples]
    tok = AutoTokenizer.from_pretrained(finetuned[0])
    items = encode(tok, examples, cfg.max_length)
    config = AutoConfig.from_pretrained(aligned)
    orig_dtype = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None) or torch.float32
    if isinstance(orig_dtype, str):
        orig_dtype = getattr(torch, orig_dtype)
    model = _load(aligned, torch.float32)
    ft_models = [_load(p, torch.float32) for p in finetuned]
    result = realign_models(model, ft_models, items, cfg)
    del ft_models
    with torch.no_grad():
        for n, p in model.named_parameters():
            p.copy_(result.params[n])
    with atomic_output(output, folder=True, marker=MANIFEST, lock=False) as tmp:  # realign holds the lock
        model.to(orig_dtype).save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        if save_mask:
            from safetensors.torch import save_file

            save_file({n: m.to(torch.uint8).contiguous() for n, m in result.masks.items()}, str(tmp / "mask.safetensors"))
        manifest = {
            "method": "SOMF (Yi et al. 2024, arXiv:2405.09055)",
            "aligned": str(aligned),
            "finetuned": [str(p) for p in finetuned],
            "safety_data": str(safety_data),
            "n_examples": len(items),
            "loss": "dpo" if "rej_ids" in items[0] else "nll",
            "config": asdict(cfg),
            "subspace_entries": result.subspace_entries,
            "masked_entries": result.masked_entries,
            "subspace_fraction": result.subspace_entries / max(result.masked_entries, 1),
            "safety_loss": result.losses,
            "train_loss_first_last": [result.train_losses[0], result.train_losses[-1]] if result.train_losses else None,
            "seconds": round(time.time() - t0, 1),
            "versions": {"torch": torch.__version__, "transformers": __import__("transformers").__version__},
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
