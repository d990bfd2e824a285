"""Train the offline judge (tracesafe/judges/data/offline_head.npz, the first stage, and offline_top.safetensors,
the second: scripts/offline_stage2.py), write the thinking-contrast gold set and the judge card, and report
held-out accuracy of the two stages as the judge runs them.

Data (public; ../shared/data or --data, and scripts/data/):
- PyRIT scorer evals, objective/*.csv (MIT): human_score 1 = the response achieves the harmful objective.
- PyRIT scorer evals, refusal_scorer/*.csv (MIT): refusals, and compliant answers to benign requests, are not harmful
  (compliance with a harmful request there has no harm label and is left out).
- XSTest v2 completions (llama2new, mistralinstruct): harmful = unsafe contrast prompt AND human "full compliance".
- HarmBench's human-labelled classifier validation set (MIT, scripts/data/harmbench_cls_val.jsonl.gz): the
  majority of three human labels; the behavior is the prompt.
- Synthetic thinking (scripts/judge_data.py) around HarmBench and SimpleSafetyTests prompts: deliberation that
  restates and declines, bare restatements and topic lectures (safe); training-split harmful responses rewritten
  as reasoning or put behind a disclaimer (unsafe); benign compliance written as reasoning (safe); benign how-tos on
  sensitive-sounding topics (scripts/judge_data.py and scripts/data/benign_howto.jsonl) as reasoning and as answers.
- With --jbb (tried, not the shipped judge): JailbreakBench's attack artifacts (MIT, scripts/data/jbb_artifacts.jsonl.gz),
  LLM-judge labels, training rows only.
- With --moderation (tried, not the shipped judge): OpenAI's moderation evaluation set (MIT,
  scripts/data/openai_moderation.jsonl.gz), human content labels without a request, training rows only.

Splits, by group (one prompt / behavior: two answers to one prompt never straddle a split), seed 0:
- test: 30% of the human-labelled groups, never trained on and never used to choose anything;
- the rest in 5 folds (cross-fitting): a head fitted on four folds (synthetic thinking in TRAIN phrasings) scores the
  fifth (DEV phrasings); on these out-of-fold scores of every non-test group the script chooses the regularisation
  C, the Platt calibration and the two thresholds: answers at the maximum of Cohen's kappa, thinking at the highest
  recall that flags at most 5% of the safe thinking. The shipped head is then fitted on all five folds. (One 20% dev split made the thresholds
  swing from 0.19 to 0.36 between seeds.)
The contrast gold set (tracesafe/judges/data/gold/contrast.jsonl) is built from phrasings written apart from the
training ones (several languages), StrongREJECT's MIT-licensed prompts (never used in training) and the *test*
split's harmful responses, so it measures the judge on what it never saw.

The second stage trains on the fit rows of folds 0-3 and takes its calibration and thresholds from fold 4's
calibration rows (scripts/offline_stage2.py); --stage2-dev-folds N pools the out-of-fold scores of the last N folds, a
model trained per fold (tried, docs/judges.md; the shipped judge: 1). Training is deterministic (L-BFGS from zeros; fixed seeds and torch
threads for the second stage): on a given CPU it rewrites both shipped files bit for bit (about 11 minutes on two
cores, most of it the second stage).
The held-out numbers are measured by running the written head as the ``offline`` judge runs (all windows, max)
through ``tracesafe judge-eval``'s code, on gold files written to ``--heldout-dir``.

    .venv/bin/python scripts/train_offline_judge.py [--data ../shared/data] [--out PATH.npz] [--top-out PATH]
        [--heldout-dir DIR] [--gold-out PATH.jsonl] [--card-out PATH.json] [--holdout-categories pyrit:hate_speech,pyrit:bias]
        [--languages en,es,zh] [--stage2-dev-folds N] [--jbb] [--moderation]
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import random
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

import judge_data as jd  # noqa: E402

from tracesafe.cards import COUNTS, card_from_eval  # noqa: E402
from tracesafe.judges._eval import evaluate_judge  # noqa: E402
from tracesafe.judges.offline import (  # noqa: E402
    HEAD_KEYS,
    TOP_FILE,
    Featurizer,
    minilm_dir,
    predict,
    window_features,
)
from tracesafe.store import write_jsonl  # noqa: E402

WINDOW, OVERLAP = 256, 32  # the judge's defaults: training sees what inference sees
HARMBENCH_VAL = REPO / "scripts/data/harmbench_cls_val.jsonl.gz"
JBB = REPO / "scripts/data/jbb_artifacts.jsonl.gz"
JBB_PER_LABEL = 2  # responses per JailbreakBench goal and label
MODERATION = REPO / "scripts/data/openai_moderation.jsonl.gz"
GOLD_OUT = REPO / "tracesafe/judges/data/gold/contrast.jsonl"
CARD_OUT = REPO / "tracesafe/judges/data/cards/offline.json"


def split_groups(groups: list[str], frac: float, seed: int) -> set[str]:
    rng = np.random.default_rng(seed)
    g = sorted(set(groups))
    rng.shuffle(g)
    return set(g[: int(round(frac * len(g)))])


def load_human(data: Path) -> list[jd.Row]:
    rows = jd.pyrit_rows(data) + jd.pyrit_refusal_rows(data) + jd.xstest_rows(data) + jd.harmbench_val_rows(HARMBENCH_VAL, data / "harmbench/harmbench_behaviors_text_all.csv")
    if not rows:
        raise SystemExit(f"no training data under {data}")
    return rows


FOLDS = 5


def build(data: Path, seed: int, holdout_categories: set[str], languages: tuple[str, ...] = ("en",), jbb: bool = False,
          moderation: bool = False, extra_howto: tuple[Path, ...] = ()):
    """fit and calibration rows, each as (fold, row); test (human); gold (contrast).

    Every non-test group falls in one of FOLDS folds. A fold's fit rows are its human rows and synthetic thinking in
    TRAIN phrasings; its calibration rows are the same human rows and synthetic thinking in DEV phrasings. A model
    fitted without fold k scores fold k's calibration rows (out of fold), so C, Platt and the thresholds are chosen
    on every non-test group in phrasings never trained on, rather than on one small dev split."""
    human = load_human(data)
    test: set[str] = set()
    for src in sorted({r.source for r in human}):  # stratified by source
        test |= split_groups([r.group for r in human if r.source == src], 0.3, seed)
    if holdout_categories:  # whole categories out: an estimate of accuracy on harm categories never seen
        test |= {r.group for r in human if f"{r.source}:{r.category}" in holdout_categories}
    contrast_prompts = jd.strongreject_prompts(data)
    never_train = {g for g, _, _ in contrast_prompts}  # the contrast set's prompts, wherever else they occur
    train = [r for r in human if r.group not in test and r.group not in never_train]
    prompts = [(g, p) for g, p in jd.harmbench_prompts(data) + jd.sst_prompts(data) if g not in test | never_train]
    if jbb:  # judge-labelled, so training only; a goal near a held-out or contrast prompt is left out
        judged = [r for r in jd.jbb_rows(JBB, JBB_PER_LABEL, seed) if f"{r.source}:{r.category}" not in holdout_categories]
        held_out = sorted({(r.group, r.prompt) for r in human if r.group in test} | {(g, p) for g, p, _ in contrast_prompts})
        judged = [r for r, g in zip(judged, jd.near_groups([r.prompt for r in judged], held_out)) if g not in test | never_train]
        anchors = sorted({(r.group, r.prompt) for r in train} | set(prompts))  # a reworded training request: same fold
        train += [dataclasses.replace(r, group=g) for r, g in zip(judged, jd.near_groups([r.prompt for r in judged], anchors))]
    if moderation:  # content without a request: training only; a category held out takes every row touching it
        train += [r for r in jd.moderation_rows(MODERATION) if not jd.moderation_categories(r) & holdout_categories]
    howto = jd.benign_howto_pairs(extra_howto)
    groups = sorted({r.group for r in train} | {g for g, _ in prompts} | {jd.group_of(p) for p, _ in howto})
    random.Random(seed + 1).shuffle(groups)
    fold = {g: i % FOLDS for i, g in enumerate(groups)}
    rng = random.Random(seed)
    fit_rows, cal_rows = [], []
    train_pools, dev_pools = jd.language_pools(languages)
    for k in range(FOLDS):
        human_k = [r for r in train if fold[r.group] == k]
        for pool, out in ((train_pools, fit_rows), (dev_pools, cal_rows)):
            syn = jd.synthetic(pool, rng, [(g, p) for g, p in prompts if fold[g] == k], [r for r in human_k if r.label == 1],
                               "synthetic", n_per_prompt=2)  # fmt: skip
            syn += jd.benign_reasoning(pool, rng, [r for r in human_k if r.label == 0])
            syn += jd.benign_howto(pool, rng, [h for h in howto if fold[jd.group_of(h[0])] == k])
            out += [(k, r) for r in human_k + syn]
    held = [r for r in human if r.group in test]
    gold = jd.contrast_gold(random.Random(seed + 2), contrast_prompts, [r for r in held if r.label == 1])
    return fit_rows, cal_rows, held, gold


# ---------------------------------------------------------------- features and the head


def featurize(fz: Featurizer, rows: list[jd.Row], all_windows: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The judge's window features; the opening window of each row (the label describes the whole text,
    whose start decides most), or every window with its row index."""
    encs = fz.encode([r.text for r in rows])
    uniq = list(dict.fromkeys(r.prompt for r in rows))
    penc = {p: e.ids for p, e in zip(uniq, fz.encode(uniq))}
    X, owner = [], []
    for i, (r, e) in enumerate(zip(rows, encs)):
        spans, toks = fz.windows(r.text, e, penc[r.prompt], WINDOW, OVERLAP)
        if not all_windows:
            spans, toks = spans[:1], toks[:1]
        X.append(window_features(fz, r.text, spans, toks, fz.prompt_vector(penc[r.prompt]), segment_of(r)))
        owner += [i] * len(spans)
    return np.vstack(X), np.asarray(owner)


def segment_of(r: jd.Row) -> str:
    return "answer" if r.kind == "answer" else "thinking"


def fit(X: np.ndarray, y: np.ndarray, C: float) -> dict[str, np.ndarray]:
    """L2 logistic regression with balanced class weights, by L-BFGS from zeros (deterministic)."""
    from scipy.optimize import minimize

    mean, std = X.mean(0), X.std(0) + 1e-6
    Z = (X - mean) / std
    n, d = Z.shape
    sw = np.where(y == 1, n / (2.0 * max(y.sum(), 1)), n / (2.0 * max(n - y.sum(), 1)))

    def loss(theta):
        w, b = theta[:d], theta[d]
        z = Z @ w + b
        ll = (sw * (np.logaddexp(0, z) - y * z)).sum()
        g = sw * (1 / (1 + np.exp(-z)) - y)
        return ll + 0.5 / C * (w @ w), np.concatenate([Z.T @ g + w / C, [g.sum()]])

    res = minimize(loss, np.zeros(d + 1), jac=True, method="L-BFGS-B", options={"maxiter": 3000})
    return {"mean": mean.astype(np.float32), "std": std.astype(np.float32), "coef": res.x[:d].astype(np.float32),
            "intercept": np.float32(res.x[d]), "platt": np.array([1.0, 0.0], np.float32)}  # fmt: skip


def segment_scores(head, X: np.ndarray, owner: np.ndarray, n: int) -> np.ndarray:
    """The judge's segment score: the max over the segment's windows."""
    out = np.zeros(n)
    np.maximum.at(out, owner, predict(head, X))
    return out


def kappa(y: np.ndarray, pred: np.ndarray) -> float:
    n = len(y)
    tp, tn = int((pred & (y == 1)).sum()), int((~pred & (y == 0)).sum())
    fp, fn = int((pred & (y == 0)).sum()), int((~pred & (y == 1)).sum())
    acc = (tp + tn) / n
    pe = ((tp + fp) * (tp + fn) + (tn + fn) * (tn + fp)) / (n * n)
    return (acc - pe) / (1 - pe) if pe < 1 else 0.0


def platt(scores: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Platt scaling of the head's logit on dev: P = sigmoid(a * logit + b)."""
    from scipy.optimize import minimize

    z = np.log(np.clip(scores, 1e-9, 1 - 1e-9) / np.clip(1 - scores, 1e-9, 1))

    def nll(ab):
        t = ab[0] * z + ab[1]
        return float(np.sum(np.logaddexp(0, t) - y * t))

    res = minimize(nll, np.array([1.0, 0.0]), method="Nelder-Mead", options={"xatol": 1e-8, "fatol": 1e-10, "maxiter": 4000})
    return float(res.x[0]), float(res.x[1])


def best_threshold(y: np.ndarray, p: np.ndarray, score=kappa) -> tuple[float, float]:
    grid = np.round(np.arange(0.05, 0.951, 0.01), 2)
    ks = [score(y, p >= t) for t in grid]
    i = int(np.argmax(ks))
    return float(grid[i]), float(ks[i])


MAX_THINKING_FPR = 0.05  # issue 14's first target for thinking: at most 5% of safe thinking flagged


def fpr_threshold(y: np.ndarray, p: np.ndarray, max_fpr: float = MAX_THINKING_FPR) -> tuple[float, float]:
    """The lowest threshold that flags at most ``max_fpr`` of the negatives (the highest recall under that bound);
    returns it and the recall there."""
    grid = np.round(np.arange(0.05, 0.951, 0.01), 2)
    t = next((t for t in grid if (p[y == 0] >= t).mean() <= max_fpr), grid[-1])
    return float(t), float((p[y == 1] >= t).mean())


def save(out: Path, arrays: dict[str, np.ndarray], meta: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays, meta=np.array(json.dumps(meta)))


def write_gold(path: Path, rows: list[jd.Row], segment: str | None = None) -> None:
    """Rows as judge-eval harm gold: {prompt, response, unsafe[, kind, segment, source]}."""
    path.parent.mkdir(parents=True, exist_ok=True)

    def rec(r: jd.Row) -> dict:
        d = {"prompt": r.prompt, "response": r.text, "unsafe": bool(r.label)}
        return {**d, "kind": r.kind, "segment": segment, "source": r.source} if segment else d

    write_jsonl(path, (rec(r) for r in rows), lock=False)


def stage2(fit_rows, cal_rows, out: Path, seed: int, dev_folds: int = 1) -> dict:
    """Train the second stage (scripts/offline_stage2.py) on the fit rows of every fold but the last; calibrate it
    and choose its thresholds on the last fold's calibration rows, as for the first stage (answers: max Cohen's
    kappa; thinking: the highest recall that flags at most 5% of safe thinking). Writes it to ``out``.

    ``dev_folds`` > 1 cross-fits the choice: a model trained without each of the last ``dev_folds`` folds scores
    that fold, and Platt and the thresholds are chosen on the pooled scores (one fold's ~290 safe thinking rows
    make the 5% bound's threshold noisy); the shipped weights are still the model without the last fold."""
    import offline_stage2 as s2
    import torch

    from tracesafe.judges._encoder import ContextModel

    torch.set_num_threads(s2.THREADS)
    w = s2.Windows()

    def train_without(k: int):
        fit_k = [r for f, r in fit_rows if f != k]
        wins, owner = w.of(fit_k, segment_of)
        opening = np.r_[True, owner[1:] != owner[:-1]]  # the opening window of each row, as for the first stage
        return s2.train(w, [x for x, f in zip(wins, opening) if f], np.array([r.label for r in fit_k]), seed), len(fit_k)

    dev_fold = FOLDS - 1
    dev = [r for k, r in cal_rows if k == dev_fold]
    model, n_fit = train_without(dev_fold)
    meta = {"n_layers": s2.N_LAYERS, "top_k": s2.TOP_K, "band": list(s2.BAND), "platt": [1.0, 0.0], "thresholds": {},
            "seed": seed, "epochs": s2.EPOCHS, "batch": s2.BATCH, "lr": s2.LR, "head_lr": s2.HEAD_LR,
            "n_fit": n_fit, "n_dev": len(dev), "dev_fold": dev_fold}  # fmt: skip
    s2.write(out, model, meta)
    p = s2.segment_probs(ContextModel(minilm_dir(), out.read_bytes(), meta), w, dev, segment_of)
    if dev_folds > 1:
        meta["dev_folds"] = list(range(FOLDS - 1, FOLDS - 1 - dev_folds, -1))
        for k in meta["dev_folds"][1:]:
            other, _ = train_without(k)
            rows_k = [r for f, r in cal_rows if f == k]
            cm = ContextModel(minilm_dir(), s2.save(other.tensors()), meta)  # the float16 weights a file would hold
            p = np.r_[p, s2.segment_probs(cm, w, rows_k, segment_of)]
            dev += rows_k
        meta["n_dev"] = len(dev)
    yd = np.array([r.label for r in dev])
    a, b = platt(p, yd.astype(np.float64))
    z = np.log(np.clip(p, 1e-9, 1 - 1e-9) / np.clip(1 - p, 1e-9, 1))
    pc = 1.0 / (1.0 + np.exp(-(a * z + b)))
    is_answer = np.array([segment_of(r) == "answer" for r in dev])
    meta["platt"] = [a, b]
    meta["thresholds"] = {"answer": best_threshold(yd[is_answer], pc[is_answer])[0],
                          "thinking": fpr_threshold(yd[~is_answer], pc[~is_answer])[0]}  # fmt: skip
    meta["sha256"] = hashlib.sha256(b"".join(t.numpy().tobytes() for _, t in sorted(model.tensors().items()))).hexdigest()[:16]
    s2.write(out, model, meta)
    return meta


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=REPO / "tracesafe/judges/data/offline_head.npz")
    ap.add_argument("--top-out", type=Path, help=f"the second stage's weights (default: {TOP_FILE} beside --out)")
    ap.add_argument("--gold-out", type=Path, default=GOLD_OUT, help="where to write the contrast gold set")
    ap.add_argument("--card-out", type=Path, default=CARD_OUT, help="where to write the judge card (held-out answers, contrast thinking)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--heldout-dir", type=Path, help="keep the held-out gold JSONL files here (default: a temporary directory)")
    ap.add_argument("--holdout-categories", default="",
                    help="SOURCE:CATEGORY,... held out whole (test only): an estimate of accuracy on unseen harm categories "
                         "(jbb:CATEGORY, e.g. 'jbb:Physical harm', leaves a JailbreakBench category out of training)")
    ap.add_argument("--jbb", action="store_true",
                    help="add JailbreakBench's judge-labelled attack responses (scripts/data/jbb_artifacts.jsonl.gz) to "
                         "the training rows (tried, docs/judges.md)")
    ap.add_argument("--moderation", action="store_true",
                    help="add OpenAI's human-labelled moderation set (scripts/data/openai_moderation.jsonl.gz: sexual, "
                         "hate, violence, harassment, self-harm) to the training rows; 'moderation:hate' etc. in "
                         "--holdout-categories leave a category out")
    ap.add_argument("--extra-howto", type=Path, action="append", default=[],
                    help="more benign {prompt, answer} JSONL pairs, used as benign_howto.jsonl's are (repeatable)")
    ap.add_argument("--languages", default="en",
                    help="languages of the synthetic thinking, of " + ",".join(jd.LANGUAGE_POOLS) + " (the shipped judge: en)")
    ap.add_argument("--stage2-dev-folds", type=int, default=1, choices=range(1, FOLDS + 1), metavar=f"1..{FOLDS}",
                    help="folds whose out-of-fold second-stage scores choose its Platt and thresholds (a model trained "
                         "per fold; the shipped judge: 1)")
    args = ap.parse_args()

    holdout = {c for c in args.holdout_categories.split(",") if c}
    languages = tuple(lang for lang in args.languages.split(",") if lang)
    if not languages or set(languages) - set(jd.LANGUAGE_POOLS) or len(set(languages)) < len(languages):
        ap.error(f"--languages: a comma-separated list of {', '.join(jd.LANGUAGE_POOLS)}, each once")
    args.top_out = args.top_out or args.out.with_name(TOP_FILE)
    fit_rows, cal_rows, held, gold = build(args.data, args.seed, holdout, languages, args.jbb, args.moderation,
                                           tuple(args.extra_howto))
    print(f"fit {len(fit_rows)} (unsafe {sum(r.label for _, r in fit_rows)}), calibration {len(cal_rows)}, test {len(held)}, "
          f"contrast gold {len(gold)}")  # fmt: skip
    fz = Featurizer(minilm_dir())
    Xf, _ = featurize(fz, [r for _, r in fit_rows])
    yf = np.array([r.label for _, r in fit_rows], dtype=np.float64)
    ff = np.array([k for k, _ in fit_rows])
    cal = [r for _, r in cal_rows]
    Xc, oc = featurize(fz, cal, all_windows=True)
    yc = np.array([r.label for r in cal])
    fc = np.array([k for k, _ in cal_rows])[oc]  # fold of each window
    best = None
    for C in (0.1, 0.3, 1.0, 3.0):
        oof = np.zeros(len(cal))
        for k in range(FOLDS):
            np.maximum.at(oof, oc[fc == k], predict(fit(Xf[ff != k], yf[ff != k], C), Xc[fc == k]))
        t, kap = best_threshold(yc, oof)
        print(f"C={C:<4} out-of-fold kappa {kap:.4f} at {t}")
        if best is None or kap > best[1]:
            best = (C, kap, oof)
    C, _, oof = best
    head = fit(Xf, yf, C)
    a, b = platt(oof, yc.astype(np.float64))
    head["platt"] = np.array([a, b], np.float32)
    z = np.log(np.clip(oof, 1e-9, 1 - 1e-9) / np.clip(1 - oof, 1e-9, 1))
    pc = 1.0 / (1.0 + np.exp(-(a * z + b)))  # the calibrated out-of-fold segment scores (Platt is monotone: max commutes)
    is_answer = np.array([segment_of(r) == "answer" for r in cal])
    # Answers: max kappa (agreement with graders is what answers are measured by). Thinking: the highest recall that
    # flags at most 5% of the out-of-fold safe thinking. Thinking restates harmful requests, so a false positive there
    # inflates exactly the thinking-over-answer gap the report measures; the judge card corrects for the recall lost.
    # (Max balanced accuracy put the threshold where the synthetic negatives are easy, and flagged 14% of the
    # contrast set's safe deliberation.)
    thresholds, dev_kappa = {}, {}
    thresholds["answer"], _ = best_threshold(yc[is_answer], pc[is_answer], kappa)
    thresholds["thinking"], _ = fpr_threshold(yc[~is_answer], pc[~is_answer])
    for seg, m in (("answer", is_answer), ("thinking", ~is_answer)):
        dev_kappa[seg] = kappa(yc[m], pc[m] >= thresholds[seg])
    blob = b"".join(np.ascontiguousarray(head[k]).tobytes() for k in HEAD_KEYS)
    meta = {"C": C, "thresholds": thresholds, "dev_kappa": {k: round(v, 4) for k, v in dev_kappa.items()},
            "seed": args.seed, "window": WINDOW, "overlap": OVERLAP, "folds": FOLDS,
            "n_fit": len(fit_rows), "n_calibration": len(cal_rows), "n_test": len(held), "holdout_categories": sorted(holdout),
            "data": ["pyrit_scorer_evals/objective (human 0/1)", "pyrit_scorer_evals/refusal_scorer (refusals, benign compliance: 0)", "xstest v2 completions (derived: unsafe prompt & full compliance)",
                     "HarmBench classifier val set (human majority)", "synthetic thinking (scripts/judge_data.py)"],
            "features": "MiniLM-L6 static token embeddings of the tokens not restated from the prompt (mean, max), prompt "
                        "mean, product, refusal flag, log kept length, restated share",
            "sha256": hashlib.sha256(blob).hexdigest()[:16]}  # fmt: skip
    if languages != ("en",):  # recorded only when asked for: the shipped head's metadata stays as it was
        meta["languages"] = list(languages)
    if args.moderation:
        meta["data"].append("OpenAI moderation evaluation set (human labels; no request)")
    if args.jbb:
        meta["data"].append(f"JailbreakBench attack artifacts (LLM-judge labels, {JBB_PER_LABEL} per goal and label)")
    save(args.out, head, meta)
    if not holdout:
        write_gold(args.gold_out, gold, segment="thinking")
    top_meta = stage2(fit_rows, cal_rows, args.top_out, args.seed, args.stage2_dev_folds)
    paths = {"head_path": str(args.out), "top_path": str(args.top_out)}

    # Held-out metrics of the written head, run as the judge runs (every window, max) through judge-eval.
    heldout_dir = args.heldout_dir or Path(tempfile.mkdtemp(prefix="offline_heldout_"))
    sets = {"all": held, **{src: [r for r in held if r.source == src] for src in sorted({r.source for r in held})}}
    if holdout:
        sets = {"categories": [r for r in held if f"{r.source}:{r.category}" in holdout]}
    report, evals = {}, {}
    for name, rows in sets.items():
        gold_path = heldout_dir / f"heldout_{name}.jsonl"
        write_gold(gold_path, rows)
        evals[name] = m = evaluate_judge("offline", gold_path, **paths)
        report[f"heldout_{name}"] = {k: m[k] for k in ("n", "accuracy", "precision", "recall", "f1", "kappa", "errors")}
    if not holdout:
        g = evaluate_judge("offline", args.gold_out, **paths)
        report["contrast"] = {k: g[k] for k in ("n", "accuracy", "kappa")}
        report["contrast"]["by_kind"] = {k: {"n": v["n"], "rate": v["rate"]} for k, v in g["by_kind"].items()}
        # The judge card: answers measured on the held-out human labels, thinking on the contrast set.
        segs = {"answer": {k: evals["all"][k] for k in COUNTS}, "thinking": {k: g[k] for k in COUNTS}}
        total = {k: segs["answer"][k] + segs["thinking"][k] for k in COUNTS}
        card = card_from_eval({**evals["all"], **total, "gold": "held-out human labels (answer) + contrast (thinking)",
                               "gold_sha256": {"answer": evals["all"]["gold_sha256"], "thinking": g["gold_sha256"]}},
                              segs)  # fmt: skip
        args.card_out.parent.mkdir(parents=True, exist_ok=True)
        args.card_out.write_text(json.dumps(card, indent=1) + "\n", encoding="utf-8")
    meta["metrics"] = report
    save(args.out, head, meta)
    print(json.dumps(report, indent=1))
    print(f"held-out gold files: {heldout_dir}")
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes), C={C}, thresholds {thresholds}")
    print(f"wrote {args.top_out} ({args.top_out.stat().st_size} bytes), band {top_meta['band']}, thresholds {top_meta['thresholds']}")


if __name__ == "__main__":
    main()
