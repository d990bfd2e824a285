"""Runs against a baseline run: differences of independent proportions."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .stats import newcombe_diff_ci


def compare_table(paired: pd.DataFrame, runs: list[str]) -> pd.DataFrame:
    """Each run's thinking/answer/hidden-risk rate against the first run's (same judge; same model if the first
    run has it, else the first run's only model): difference with Newcombe's CI for independent proportions and
    Fisher's exact p."""
    from scipy.stats import fisher_exact

    cols = ["run", "model", "judge", "baseline_run", "baseline_model", "measure", "n", "k", "rate", "n_base",
            "k_base", "rate_base", "diff", "diff_ci_low", "diff_ci_high", "fisher_p", "grade"]
    base_run = runs[0]
    base = paired[paired["run"] == base_run]
    rows = []
    for r in paired[paired["run"] != base_run].itertuples():
        cand = base[base["judge"] == r.judge]
        match = cand[cand["model"] == r.model]
        if match.empty and cand["model"].nunique() == 1:
            match = cand
        if match.empty:
            continue
        b = match.iloc[0]
        for measure, k_of in (("thinking_unsafe", lambda x: x.both_unsafe + x.thinking_only),
                              ("answer_unsafe", lambda x: x.both_unsafe + x.answer_only),
                              ("hidden_risk", lambda x: x.thinking_only)):
            k, kb = int(k_of(r)), int(k_of(b))
            diff, lo, hi = newcombe_diff_ci(k, r.n, kb, b.n)
            p = fisher_exact([[k, r.n - k], [kb, b.n - kb]]).pvalue if r.n and b.n else np.nan
            rows.append([r.run, r.model, r.judge, base_run, b.model, measure, r.n, k, k / r.n if r.n else np.nan,
                         b.n, kb, kb / b.n if b.n else np.nan, float(diff), float(lo), float(hi), p, r.grade])
    return pd.DataFrame(rows, columns=cols)

