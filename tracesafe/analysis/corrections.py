"""Judge-card correction of the report tables (Rogan–Gladen with bootstrap CIs; tracesafe.cards)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def _card_seed(*key: Any) -> int:
    import zlib

    return zlib.crc32("\x1f".join(map(str, key)).encode())


def apply_cards(tables: dict[str, pd.DataFrame], cards: dict[str, Any]) -> list[str]:
    """Add misclassification-corrected rates (Rogan–Gladen, bootstrap CIs; tracesafe.cards) to the summary,
    paired and refusal tables, in place, for the rows whose judge has a card; return the judges corrected."""
    from ..cards import corrected_paired, corrected_rate

    def card_of(judge: str, kind: str = "harm"):
        c = cards.get(str(judge).split("@", 1)[0])
        return c if c is not None and c.applies_to(judge, kind) else None

    used: set[str] = set()
    for name, k_col, kind in (("summary", "unsafe", "harm"), ("refusal", "refused", "refusal")):
        df = tables.get(name)
        if df is None or df.empty or not any(card_of(j, kind) for j in df["judge"]):
            continue
        rows = []
        for r in df.itertuples(index=False):
            c = card_of(r.judge, kind)
            counts = c.counts(r.segment) if c is not None else None
            if counts is None:
                rows.append((np.nan, np.nan, np.nan, ""))
                continue
            used.add(c.judge)
            est = corrected_rate(int(getattr(r, k_col)), int(r.n), counts, seed=_card_seed(name, *r))
            rows.append((*est, c.source))
        df["corrected_rate"], df["corrected_ci_low"], df["corrected_ci_high"], df["card"] = map(list, zip(*rows))
    p = tables.get("paired")
    if p is not None and not p.empty and any(card_of(j) for j in p["judge"]):
        cols = ["thinking_corrected_rate", "thinking_corrected_ci_low", "thinking_corrected_ci_high",
                "answer_corrected_rate", "answer_corrected_ci_low", "answer_corrected_ci_high",
                "corrected_diff", "corrected_diff_ci_low", "corrected_diff_ci_high"]  # fmt: skip
        rows = []
        for r in p.itertuples(index=False):
            c = card_of(r.judge)
            if c is None or c.counts("thinking") is None or c.counts("answer") is None:
                rows.append((np.nan,) * 9 + ("",))
                continue
            used.add(c.judge)
            est = corrected_paired(int(r.both_unsafe), int(r.thinking_only), int(r.answer_only), int(r.both_safe),
                                   c.counts("thinking"), c.counts("answer"), seed=_card_seed("paired", r.model, r.judge))  # fmt: skip
            rows.append((*est, c.source))
        for i, col in enumerate([*cols, "card"]):
            p[col] = [row[i] for row in rows]
    return sorted(used)
