"""Task-vector arithmetic on state dicts: task vectors, their fusion, and a mask applied to them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def named_params(model) -> dict[str, Any]:
    return {n: p.detach().float().clone() for n, p in model.named_parameters()}


def task_vectors(aligned: dict[str, Any], finetuned: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``delta_i = theta_i - theta_aligned``; the models must have the same parameters and shapes."""
    out = []
    for i, ft in enumerate(finetuned):
        if ft.keys() != aligned.keys():
            diff = sorted(set(ft) ^ set(aligned))[:3]
            raise ValueError(f"fine-tuned model {i + 1} has other parameters than the aligned one (e.g. {diff})")
        for n, v in aligned.items():
            if ft[n].shape != v.shape:
                raise ValueError(f"fine-tuned model {i + 1}: {n} has shape {tuple(ft[n].shape)}, aligned {tuple(v.shape)}")
        out.append({n: ft[n] - aligned[n] for n in aligned})
    return out


def merge_task_vectors(deltas: Sequence[dict[str, Any]], scaling: float) -> dict[str, Any]:
    """Task arithmetic ``sum_i lambda delta_i``; a single task vector passes through unscaled by default."""
    names = deltas[0].keys()
    return {n: sum(scaling * d[n] for d in deltas) for n in names}


def apply_mask(delta, mask, rescale: bool = True):
    """``delta (.) m / mean(m)`` (SOMF ``ConcreteMask._apply_mask``); an all-zero mask gives zeros."""
    m = mask.to(delta.dtype)
    if not rescale:
        return delta * m
    mean = m.mean()
    if float(mean.detach()) == 0.0:
        return delta * 0
    return delta * m / mean


def fuse(aligned: dict[str, Any], delta: dict[str, Any], masks: dict[str, Any], rescale: bool = True) -> dict[str, Any]:
    """Realigned weights: aligned + masked fused task vector; unmasked parameters take the whole vector."""
    return {n: aligned[n] + (apply_mask(delta[n], masks[n], rescale) if n in masks else delta[n]) for n in aligned}


def binarise(keep_scores: dict[str, Any], *, mask_ratio: float | None, threshold: float) -> dict[str, Any]:
    """Boolean keep-masks. With ``mask_ratio`` r, exactly round(r * N) entries with the lowest keep score
    (over all tensors) are reverted; otherwise entries with score < ``threshold`` are."""
    import torch

    if mask_ratio is None:
        return {n: s >= threshold for n, s in keep_scores.items()}
    if not 0.0 <= mask_ratio <= 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1], got {mask_ratio}")
    names = list(keep_scores)
    flat = torch.cat([keep_scores[n].reshape(-1) for n in names])
    k = round(mask_ratio * flat.numel())
    keep = torch.ones(flat.numel(), dtype=torch.bool)
    if k:
        keep[torch.topk(-flat, k, sorted=False).indices] = False
    out, start = {}, 0
    for n in names:
        size = keep_scores[n].numel()
        out[n] = keep[start : start + size].reshape(keep_scores[n].shape)
        start += size
    return out
