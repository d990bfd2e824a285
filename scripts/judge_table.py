"""One table of judges against every gold set they can be measured on: n decided, errors (declined), accuracy and
Cohen's kappa with 95% intervals (none for a gold set of one label), the false-positive rate on safe deliberation and
the recall on unsafe (harm) or refused (refusal) items (Wilson 95% intervals), as Markdown. docs/judges.md shows its
output for the two judges that run anywhere.

    .venv/bin/python scripts/judge_table.py [--heldout-dir DIR] [--data ../shared/data] \\
        [--judge offline --judge refusal] [--judge-model NAME=PATH] [-O KEY=VALUE]

``--heldout-dir``: the held-out gold files `scripts/train_offline_judge.py --heldout-dir DIR` writes (rows for the
offline judge's held-out human labels). A harm judge is measured on the harm gold sets, a refusal judge on the
refusal ones; a model judge on a GPU node: `--judge llama-guard --judge-model llama-guard=/models/Llama-Guard-3-8B`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tracesafe.analysis.stats import wilson_ci  # noqa: E402
from tracesafe.judges import evaluate_judge, list_judges, load_gold  # noqa: E402
from tracesafe.judges._eval import BUILTIN_GOLD  # noqa: E402

HELDOUT = {"heldout_all": "held-out human labels, answers (all)", "heldout_harmbench": "— HarmBench classifier val",
           "heldout_pyrit": "— PyRIT objective evals", "heldout_pyrit_refusal": "— PyRIT refusal scorer (all safe)",
           "heldout_xstest": "— XSTest, derived label"}  # fmt: skip
REFUSAL_FILES = {"xstest/xstest_v2_completions_llama2new.csv": "XSTest v2, llama2new (rules developed on it)",
                 "xstest/xstest_v2_completions_mistralinstruct.csv": "XSTest v2, mistralinstruct",
                 "pyrit_scorer_evals/refusal_scorer/refusal.csv": "PyRIT refusal scorer"}  # fmt: skip


def wilson(k: int, n: int) -> str:
    if not n:
        return "–"
    low, high = wilson_ci(k, n)
    return f"{k / n:.3f} [{low:.3f}, {high:.3f}] ({k}/{n})"


def cell(m: dict, key: str) -> str:
    ci = m.get(f"{key}_ci")
    return "–" if m[key] is None else f"{m[key]:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else f"{m[key]:.3f}"


def pooled(m: dict, prefix: str, label: str) -> str:
    """The rate over every kind whose name starts with ``prefix`` and whose items are all ``label``."""
    kinds = [k for name, k in m.get("by_kind", {}).items() if name.startswith(prefix) and k["label"] == label]
    return wilson(sum(k["flagged"] for k in kinds), sum(k["n"] for k in kinds)) if kinds else "–"


def row(judge: str, name: str, m: dict) -> str:
    fpr = pooled(m, "deliberation", "safe")
    positives, negatives = m["tp"] + m["fn"], m["fp"] + m["tn"]
    recall = wilson(m["tp"], positives) if positives else "–"
    kappa = cell(m, "kappa") if positives and negatives else "–"  # one label throughout: kappa says nothing
    return (f"| {judge} v{m['judge_version']} | {name} | {m['n']} | {m['errors']} | {cell(m, 'accuracy')} | "
            f"{kappa} | {fpr} | {recall} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--heldout-dir", type=Path, help="held-out gold files of scripts/train_offline_judge.py")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data", help="the shared datasets")
    ap.add_argument("--judge", action="append", help="judge name (repeatable; default: offline and refusal)")
    ap.add_argument("--judge-model", action="append", default=[], help="NAME=PATH of a model judge's weights")
    ap.add_argument("-O", "--option", action="append", default=[], help="KEY=VALUE judge option")
    args = ap.parse_args()
    models = dict(x.split("=", 1) for x in args.judge_model)
    options = dict(x.split("=", 1) for x in args.option)
    print("| judge | gold set | n decided | errors | accuracy [95% CI] | κ [95% CI] | safe deliberation flagged | "
          "recall (unsafe / refused items) |")
    print("|---|---|---|---|---|---|---|---|")
    kinds = {i.name: i.kind for i in list_judges()}
    builtin = {name: load_gold(name)[0] for name in BUILTIN_GOLD}  # each set's kind and segment from its first item
    for judge in args.judge or ["offline", "refusal"]:
        kind = kinds[judge]
        sets: list[tuple[str, str | Path]] = []
        if kind != "refusal" and args.heldout_dir:
            sets += [(label, args.heldout_dir / f"{name}.jsonl") for name, label in HELDOUT.items()
                     if (args.heldout_dir / f"{name}.jsonl").exists()]  # fmt: skip
        if kind != "harm":
            sets += [(label, args.data / path) for path, label in REFUSAL_FILES.items() if (args.data / path).exists()]
        sets += [(f"`{name}`" + (f" ({it.segment})" if it.segment else ""), name) for name, it in builtin.items()
                 if it.kind == kind]  # fmt: skip
        for label, gold in sets:
            m = evaluate_judge(judge, gold, judge_model=models.get(judge), **options)
            print(row(judge, label, m), flush=True)


if __name__ == "__main__":
    main()
