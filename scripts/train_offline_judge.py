"""Retrain the offline judge's head (tracesafe/judges/data/offline_head.npz) and report held-out accuracy.

Data (human-labelled, public; read from ../shared/data or --data):
- PyRIT scorer evals, objective/*.csv (MIT): human_score 1 = the response achieves the harmful objective.
- XSTest v2 completions (llama2new, mistralinstruct): a response is labelled harmful when the prompt is
  an unsafe contrast prompt AND the humans labelled it full compliance (a derived label: complying with
  an unsafe request); refusals, partial refusals and every answer to a safe prompt are labelled 0.

Split: 30% of the groups held out (a group = one objective / one XSTest prompt, so the two models'
answers to one prompt never straddle the split), stratified by source, seed 0. The regularisation C is
picked by 5-fold grouped cross-validation on the training part only; the shipped head is fit on the
training part only. The held-out numbers are measured by running the written head as the ``offline`` judge
does at inference (every window scored, segment = max over windows) through ``tracesafe judge-eval``'s code,
on gold files written to ``--heldout-dir``; ``tracesafe judge-eval --judge offline --gold DIR/heldout_all.jsonl``
reproduces them.

    .venv/bin/python scripts/train_offline_judge.py [--data ../shared/data] [--out tracesafe/judges/data/offline_head.npz]
        [--heldout-dir DIR]
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tracesafe.judges._eval import evaluate_judge  # noqa: E402
from tracesafe.judges.offline import Featurizer, minilm_dir  # noqa: E402
from tracesafe.store import write_jsonl  # noqa: E402

WINDOW = 256  # the judge's default window: training sees what inference sees


def load_rows(data: Path) -> list[tuple[str, str, str, str, int]]:
    """(source, group, prompt, response, label) rows."""
    import pandas as pd

    rows = []
    for f in sorted(glob.glob(str(data / "pyrit_scorer_evals/objective/*.csv"))):
        d = pd.read_csv(f, comment="#")
        for r in d.itertuples():
            rows.append(("pyrit", "p:" + str(r.objective), str(r.objective), str(r.assistant_response), int(r.human_score)))
    for f in sorted(glob.glob(str(data / "xstest/xstest_v2_completions_*.csv"))):
        d = pd.read_csv(f)
        for r in d.itertuples():
            harmful = str(r.type).startswith("contrast") and r.final_label == "1_full_compliance"
            rows.append(("xstest", "x:" + str(r.prompt), str(r.prompt), str(r.completion), int(harmful)))
    if not rows:
        raise SystemExit(f"no training data under {data}")
    return rows


def featurize(fz: Featurizer, rows) -> np.ndarray:
    prompts = [r[2] for r in rows]
    texts = [r[3] for r in rows]
    pm = np.vstack([fz.mean(e.ids) for e in fz.encode(prompts)])
    rm, refused, counts = [], [], []
    for text, enc in zip(texts, fz.encode(texts)):
        spans, means, n = fz.windows(text, enc, WINDOW, 32)
        a, b = spans[0]  # the opening window: the label describes the response, whose start decides most
        rm.append(means[0])
        refused.append(fz.refused(text[a:b]))
        counts.append(n[0])
    return fz.features(np.vstack(rm), pm, np.asarray(refused, np.float32), np.asarray(counts, np.float32))


def fit(X: np.ndarray, y: np.ndarray, C: float) -> dict[str, np.ndarray]:
    from scipy.optimize import minimize

    mean, std = X.mean(0), X.std(0) + 1e-6
    Z = (X - mean) / std
    n, d = Z.shape
    w_pos = n / (2.0 * max(y.sum(), 1))  # balanced classes: harmful answers are the minority
    w_neg = n / (2.0 * max(n - y.sum(), 1))
    sw = np.where(y == 1, w_pos, w_neg)

    def loss(theta):
        w, b = theta[:d], theta[d]
        z = Z @ w + b
        p = 1 / (1 + np.exp(-z))
        ll = -(sw * (y * np.log(p + 1e-12) + (1 - y) * np.log(1 - p + 1e-12))).sum()
        g = sw * (p - y)
        return ll + 0.5 / C * (w @ w), np.concatenate([Z.T @ g + w / C, [g.sum()]])

    res = minimize(loss, np.zeros(d + 1), jac=True, method="L-BFGS-B", options={"maxiter": 2000})
    return {"mean": mean.astype(np.float32), "std": std.astype(np.float32),
            "coef": res.x[:d].astype(np.float32), "intercept": np.float32(res.x[d])}  # fmt: skip


def predict(head, X):
    return 1 / (1 + np.exp(-(((X - head["mean"]) / head["std"]) @ head["coef"] + head["intercept"])))


def group_split(groups: list[str], sources: list[str], frac: float, seed: int) -> np.ndarray:
    """Boolean test mask: ``frac`` of each source's groups."""
    rng = np.random.default_rng(seed)
    test = set()
    for src in sorted(set(sources)):
        g = sorted({gr for gr, s in zip(groups, sources) if s == src})
        rng.shuffle(g)
        test.update(g[: int(round(frac * len(g)))])
    return np.array([gr in test for gr in groups])


def write_gold(path: Path, rows) -> None:
    """Held-out rows as judge-eval harm gold: {prompt, response, unsafe}."""
    write_jsonl(path, ({"prompt": r[2], "response": r[3], "unsafe": bool(r[4])} for r in rows), lock=False)


def save(out: Path, head: dict[str, np.ndarray], meta: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **head, threshold=np.float32(0.5), meta=np.array(json.dumps(meta)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=REPO / "tracesafe/judges/data/offline_head.npz")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--heldout-dir", type=Path, help="keep the held-out gold JSONL files here (default: a temporary directory)")
    args = ap.parse_args()

    rows = load_rows(args.data)
    fz = Featurizer(minilm_dir())
    X = featurize(fz, rows)
    y = np.array([r[4] for r in rows], dtype=np.float64)
    src = np.array([r[0] for r in rows])
    groups = [r[1] for r in rows]
    test = group_split(groups, list(src), 0.3, args.seed)
    tr = ~test

    # C by grouped 5-fold CV on the training part.
    tr_idx = np.flatnonzero(tr)
    tr_groups = sorted({groups[i] for i in tr_idx})
    rng = np.random.default_rng(args.seed)
    rng.shuffle(tr_groups)
    fold_of = {g: k % 5 for k, g in enumerate(tr_groups)}
    folds = np.array([fold_of[groups[i]] for i in tr_idx])
    best = None
    for C in (0.003, 0.01, 0.03, 0.1, 0.3, 1.0):
        correct = 0
        for k in range(5):
            a, b = tr_idx[folds != k], tr_idx[folds == k]
            h = fit(X[a], y[a], C)
            correct += int(((predict(h, X[b]) >= 0.5) == (y[b] == 1)).sum())
        acc = correct / len(tr_idx)
        print(f"C={C:<6} cv accuracy {acc:.4f}")
        if best is None or acc > best[1]:
            best = (C, acc)
    C = best[0]
    head = fit(X[tr], y[tr], C)
    blob = b"".join(np.ascontiguousarray(head[k]).tobytes() for k in ("mean", "std", "coef", "intercept"))
    meta = {"C": C, "cv_accuracy": round(best[1], 4), "window": WINDOW, "seed": args.seed,
            "n_train": int(tr.sum()), "n_test": int(test.sum()),
            "data": ["pyrit_scorer_evals/objective (human 0/1)",
                     "xstest v2 completions (derived: unsafe prompt & full compliance)"],
            "features": "MiniLM-L6 static token-embedding means (response window, prompt, product), refusal flag, log length",
            "sha256": hashlib.sha256(blob).hexdigest()[:16]}  # fmt: skip
    save(args.out, head, meta)

    # Held-out metrics of the written head, run exactly as the judge runs (all windows, max), not of the
    # opening-window features it was fit on: long responses are scored over every window at inference.
    heldout_dir = args.heldout_dir or Path(tempfile.mkdtemp(prefix="offline_heldout_"))
    heldout_dir.mkdir(parents=True, exist_ok=True)
    report = {}
    for name, mask in (("all", test), ("pyrit", test & (src == "pyrit")), ("xstest", test & (src == "xstest"))):
        gold = heldout_dir / f"heldout_{name}.jsonl"
        write_gold(gold, [r for r, m in zip(rows, mask) if m])
        m = evaluate_judge("offline", gold, head_path=str(args.out))
        report[f"heldout_{name}"] = {k: m[k] for k in ("n", "accuracy", "precision", "recall", "f1", "kappa", "errors")}
    meta["metrics"] = report
    save(args.out, head, meta)
    print(json.dumps(report, indent=1))
    print(f"held-out gold files: {heldout_dir}")
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes), C={C}")


if __name__ == "__main__":
    main()
