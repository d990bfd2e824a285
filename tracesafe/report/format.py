"""Numbers and user-supplied strings as report text: percentages, CIs, p-values, Markdown escaping, CSV cells."""

from __future__ import annotations

import re

import pandas as pd

MARK = " ‡"


def _dec(x: float) -> str:
    # One decimal, but never print a non-zero bound as 0.0 (a Wilson upper bound at 0/n is small, not zero).
    return f"{x:.1f}" if x == 0 or abs(x) >= 0.1 else f"{x:.2g}"


def pct(x) -> str:
    return "–" if x is None or pd.isna(x) else f"{_dec(100 * float(x))}%"


def ci(lo, hi) -> str:
    if lo is None or pd.isna(lo) or pd.isna(hi):
        return ""
    return f"[{_dec(100 * float(lo))}, {_dec(100 * float(hi))}]"


def marks(grades) -> list[str]:
    """The mark after each number from a screening-grade judge, from a table's ``grade`` column."""
    return [MARK if g == "screening" else "" for g in grades]


def pval(p) -> str:
    if p is None or pd.isna(p):
        return "–"
    p = float(p)
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def judge_disp(judge: str, grade: str | None) -> str:
    return f"{judge} (screening-grade)" if grade == "screening" else str(judge)


def pp(r, lo, hi) -> str:
    """A difference with its CI in percentage points."""
    if pd.isna(r):
        return "–"
    return f"{100 * r:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"


def num(x) -> str:
    if x is None or pd.isna(x):
        return "–"
    return f"{int(x):,}"


# ---------------------------------------------------------------- escaping

_SPACE = re.compile(r"\s+")  # newlines and every other Unicode space or line separator
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_MD_PUNCT = re.compile(r"([\\`*_\[\]|~$#])")
_LIST_MARKER = re.compile(r"(?:[+-]|\d{1,9}[.)])(?= |$)")  # opens a nested list at the start of a list item


def one_line(text) -> str:
    """``text`` on one line: whitespace runs (newlines included) become one space, control characters U+FFFD."""
    return _CONTROL.sub("\ufffd", _SPACE.sub(" ", str(text)))


def md(text) -> str:
    """A user-supplied string (model, judge, suite, category, run, file name, title) as Markdown that renders
    as exactly that text on one line: HTML (``<script>``, ``<img onerror>``) as entities, Markdown markup
    (links, emphasis, code, table pipes, ``$`` math, headings, list markers) backslash-escaped. Every such
    string goes into report.md through here; ``_inline`` renders the result to HTML."""
    s = one_line(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    s = _MD_PUNCT.sub(r"\\\1", s)
    m = _LIST_MARKER.match(s)
    return s if m is None else f"{s[: m.end() - 1]}\\{s[m.end() - 1:]}"


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")  # and full-width forms


def csv_safe(df: pd.DataFrame) -> pd.DataFrame:
    """Text cells that a spreadsheet would run as a formula (starting with = + - @, tab or CR) get a leading
    single quote, as OWASP's CSV-injection guidance says; numbers are untouched."""
    out = df.copy()
    for c in out.columns:
        if out[c].dtype == object or isinstance(out[c].dtype, (pd.CategoricalDtype, pd.StringDtype)):
            out[c] = out[c].map(lambda v: "'" + v if isinstance(v, str) and v.startswith(_FORMULA_START) else v)
    return out


def error_reasons(reasons: dict, grades: dict[str, str], width: int = 160) -> str:
    """' Most common: JUDGE N× “message”; …' for the Data section (messages cut at ``width``), or ''."""
    if not reasons["top"]:
        return ""
    said = [f"{md(judge_disp(j, grades.get(j)))} {num(n)}× “{md(e if len(e) <= width else e[: width - 1] + '…')}”"
            for j, e, n in reasons["top"]]  # fmt: skip
    if reasons["rest"]:
        k = reasons["rest_messages"]
        said.append(f"and {num(reasons['rest'])} more with {num(k)} other message{'' if k == 1 else 's'}")
    return " Most common: " + "; ".join(said) + "."
