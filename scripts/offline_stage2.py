"""Training of the offline judge's second stage (tracesafe/judges/_encoder.py), called by train_offline_judge.py.

MiniLM's top ``TOP_K`` layers start from the pretrained weights and are fine-tuned with a linear head (from zeros)
on the opening window of each fit row (the first stage's fit rows of every fold but ``DEV_FOLD``), class-balanced
binary cross-entropy, AdamW, linear warm-up and decay, ``EPOCHS`` epochs in batches of ``BATCH`` windows of
similar length in a seeded order. The bottom layers are frozen: their float16 output is computed once per window
by the judge's own code and reused every epoch; the top goes through ``_encoder.top_logits``, the function the
judge runs, so training and judging compute the same thing. Then the weights are written in float16
and, with the judge's own scorer on those weights, the calibration rows of ``DEV_FOLD`` (never trained on) give
the Platt scaling and the two thresholds, chosen as for the first stage. Deterministic on a given CPU and
thread count (``torch.set_num_threads(THREADS)``): a rerun rewrites the file bit for bit.
"""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save

from tracesafe.judges import _encoder as E
from tracesafe.judges.offline import minilm_dir

TOP_K, EPOCHS, BATCH, LR, HEAD_LR, THREADS = 2, 3, 16, 5e-5, 2e-3, 2
N_LAYERS = 6  # all-MiniLM-L6-v2
BAND = (0.2, 0.8)  # first-stage scores routed to this stage; the probe's narrowest band (fastest, most accurate there)


class Windows:
    """The judge's windows of rows, and the bottom layers' output per window (cached by token ids)."""

    def __init__(self):
        from tokenizers import Tokenizer

        self.tok = Tokenizer.from_file(str(minilm_dir() / "tokenizer.json"))
        self.tok.no_truncation()
        self.tok.no_padding()
        self.bottom = E.Bottom(minilm_dir(), N_LAYERS - TOP_K)
        self.cache: dict[bytes, torch.Tensor] = {}

    def of(self, rows, segment_of) -> tuple[list[np.ndarray], np.ndarray]:
        """Token ids of every window of ``rows`` and the row each belongs to."""
        encs = self.tok.encode_batch([r.text for r in rows], add_special_tokens=False)
        wins, owner = [], []
        for i, (r, enc) in enumerate(zip(rows, encs)):
            _, ws = E.windows(self.tok, r.text, enc, E.head_ids(self.tok, segment_of(r), r.prompt))
            wins += ws
            owner += [i] * len(ws)
        return wins, np.asarray(owner)

    def hidden(self, windows: list[np.ndarray]) -> list[torch.Tensor]:
        todo = list({w.tobytes(): w for w in windows if w.tobytes() not in self.cache}.values())
        for w, h in zip(todo, self.bottom(todo)):
            self.cache[w.tobytes()] = h
        return [self.cache[w.tobytes()] for w in windows]


class Top(torch.nn.Module):
    def __init__(self):
        super().__init__()
        from safetensors import safe_open

        with safe_open(str(minilm_dir() / "model.safetensors"), framework="pt") as f:
            self.layers = torch.nn.ModuleList(
                torch.nn.ParameterList(E.layer_params(f.get_tensor, f"encoder.layer.{i}.")) for i in range(N_LAYERS - TOP_K, N_LAYERS))
        self.head_w = torch.nn.Parameter(torch.zeros(1, 384))
        self.head_b = torch.nn.Parameter(torch.zeros(1))

    def forward(self, hidden: list[torch.Tensor]) -> torch.Tensor:
        return E.top_logits(hidden, [list(p) for p in self.layers], (self.head_w, self.head_b))

    def tensors(self) -> dict[str, torch.Tensor]:
        """The state in the judge's file layout (``layers.<i>.<part>.<weight|bias>``, ``head.*``), float16."""
        names = [f"{part}.{w}" for part in E.PARTS for w in ("weight", "bias")]
        out = {f"layers.{i}.{n}": t.detach().half().contiguous() for i, p in enumerate(self.layers) for n, t in zip(names, p)}
        out["head.weight"], out["head.bias"] = self.head_w.detach().half().contiguous(), self.head_b.detach().half().contiguous()
        return out


def train(w: Windows, wins: list[np.ndarray], y: np.ndarray, seed: int, log=print) -> Top:
    torch.manual_seed(seed)
    model = Top()
    opt = torch.optim.AdamW([{"params": model.layers.parameters(), "lr": LR},
                             {"params": [model.head_w, model.head_b], "lr": HEAD_LR}], weight_decay=0.01)  # fmt: skip
    n, pos = len(y), max(int(y.sum()), 1)
    weight = {1: n / (2.0 * pos), 0: n / (2.0 * max(n - pos, 1))}
    steps = EPOCHS * math.ceil(n / BATCH)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / (0.06 * steps)) * max(0.0, 1 - s / steps))
    rng, t0 = random.Random(seed), time.time()
    hidden = w.hidden(wins)
    for ep in range(EPOCHS):
        # batches of similar length (little padding), in a seeded random order
        order = E.batches([len(x) + rng.random() * 40 for x in wins], BATCH)
        rng.shuffle(order)
        total = 0.0
        for b in order:
            logits = model([hidden[i] for i in b])
            yt = torch.tensor([float(y[i]) for i in b])
            wt = torch.tensor([weight[int(y[i])] for i in b])
            loss = (torch.nn.functional.binary_cross_entropy_with_logits(logits, yt, reduction="none") * wt).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(b)
        log(f"  stage 2 epoch {ep}: mean loss {total / n:.4f}, {(time.time() - t0) / 60:.1f} min")
    return model.eval()


def write(path: Path, model: Top, meta: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(save(model.tensors(), metadata={"meta": json.dumps(meta, sort_keys=True)}))


def segment_probs(cm: E.ContextModel, w: Windows, rows, segment_of) -> np.ndarray:
    """The second stage's score of whole segments (every window read, max, calibrated) with the written weights:
    its Platt scaling and thresholds are chosen on these. (The judge re-reads only a routed segment's uncertain
    windows, keeping the first stage's lower score for the rest; on every gold set that gives the same verdicts.)"""
    wins, owner = w.of(rows, segment_of)
    out = np.full(len(rows), -np.inf)
    np.maximum.at(out, owner, cm.logits(wins))
    return cm.prob(out)
