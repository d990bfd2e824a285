"""Judge-card correction of the report tables (Rogan–Gladen with posterior CIs; tracesafe.cards)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)


def _card_seed(*key: Any) -> int:
    import zlib

    return zlib.crc32("\x1f".join(map(str, key)).encode())


BELOW_FLOOR, ABOVE_SENSITIVITY = "below_false_positive_floor", "above_sensitivity"


def card_conflict(k: int, n: int, c: Any) -> str:
    """Whether an observed rate k/n is outside what the card allows: below its false-positive floor
    (1 − specificity: the judge flags at least that share of safe texts) or above its sensitivity (it flags at most
    that share of harmful ones). Either way the judge behaves differently on this data than on the card's gold set,
    and the corrected rate clips to 0 or 1 with an interval that says little. "" when consistent."""
    if n <= 0:
        return ""
    p = k / n
    if p < 1 - c.specificity:
        return BELOW_FLOOR
    if p > c.sensitivity:
        return ABOVE_SENSITIVITY
    return ""


def threshold_mismatch(card: Any, found: dict[str, set] | None) -> str:
    """Why ``card`` does not describe verdicts judged with the decision options ``found`` (option -> the values
    seen on the judge's verdicts; analysis.verdicts.DECISION_KEYS: thresholds, the offline judge's second stage), or ""
    when it does. A judge run at another threshold, or without its second stage, trades sensitivity for
    specificity, so a card measured at the default says nothing about it. A card that records no ``judge_config``
    (one written by hand) is taken at its word."""
    cfg = card.info.get("judge_config")
    if not isinstance(cfg, dict) or not found:
        return ""

    from .verdicts import STAGE_KEY, UNKNOWN, _stage, _threshold

    def show(key: str, v) -> str:
        if key == STAGE_KEY:
            return "off" if v is None else f"weights {v}"
        return "default" if v is None else f"{v:g}"

    out = []
    for key, seen in sorted(found.items()):
        seen = seen - {UNKNOWN}
        if not seen:
            continue
        want = _stage(cfg) if key == STAGE_KEY else _threshold(cfg, key)
        if seen != {want}:
            have = ", ".join(show(key, v) for v in sorted(seen, key=lambda v: (v is not None, str(v))))
            out.append(f"{key} {show(key, want)} on the card, {have} on the verdicts")
    return "; ".join(out)


def drop_unmatched_cards(cards: dict[str, Any], thresholds: dict[str, dict[str, set]]) -> dict[str, str]:
    """Take out of ``cards``, in place, those measured at other threshold options than the verdicts of their
    judge were judged with; return judge -> why, for the report."""
    dropped = {}
    for judge, c in list(cards.items()):
        why = threshold_mismatch(c, thresholds.get(judge))
        if why:
            log.warning("judge card %s not used for %s: %s", c.source, judge, why)
            dropped[judge] = f"{c.source}: {why}"
            del cards[judge]
    return dropped


def apply_cards(tables: dict[str, pd.DataFrame], cards: dict[str, Any]) -> list[str]:
    """Add misclassification-corrected rates (Rogan–Gladen, posterior CIs; tracesafe.cards) to the summary,
    paired and refusal tables, in place, for the rows whose judge has a card, with ``card_conflict`` (see
    ``card_conflict``) per rate; return the judges corrected."""
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
                rows.append((np.nan, np.nan, np.nan, "", ""))
                continue
            used.add(c.judge)
            k, n = int(getattr(r, k_col)), int(r.n)
            est = corrected_rate(k, n, counts, seed=_card_seed(name, *r))
            rows.append((*est, c.source, card_conflict(k, n, counts)))
        cols = ["corrected_rate", "corrected_ci_low", "corrected_ci_high", "card", "card_conflict"]
        for i, col in enumerate(cols):
            df[col] = [row[i] for row in rows]
    p = tables.get("paired")
    if p is not None and not p.empty and any(card_of(j) for j in p["judge"]):
        cols = ["thinking_corrected_rate", "thinking_corrected_ci_low", "thinking_corrected_ci_high",
                "answer_corrected_rate", "answer_corrected_ci_low", "answer_corrected_ci_high",
                "corrected_diff", "corrected_diff_ci_low", "corrected_diff_ci_high"]  # fmt: skip
        rows = []
        for r in p.itertuples(index=False):
            c = card_of(r.judge)
            if c is None or c.counts("thinking") is None or c.counts("answer") is None:
                rows.append((np.nan,) * 9 + ("", "", ""))
                continue
            used.add(c.judge)
            est = corrected_paired(int(r.both_unsafe), int(r.thinking_only), int(r.answer_only), int(r.both_safe),
                                   c.counts("thinking"), c.counts("answer"), seed=_card_seed("paired", r.model, r.judge))  # fmt: skip
            n = int(r.both_unsafe + r.thinking_only + r.answer_only + r.both_safe)
            rows.append((*est, c.source, card_conflict(int(r.both_unsafe + r.thinking_only), n, c.counts("thinking")),
                         card_conflict(int(r.both_unsafe + r.answer_only), n, c.counts("answer"))))  # fmt: skip
        for i, col in enumerate([*cols, "card", "thinking_card_conflict", "answer_card_conflict"]):
            p[col] = [row[i] for row in rows]
    return sorted(used)
