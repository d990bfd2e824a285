"""The statistics of the report: rates with confidence intervals, paired tests, agreement. numpy / scipy.

Statistics (see docs/report.md):
- Wilson score interval for a proportion (Wilson 1927, JASA 22:209-212).
- Exact McNemar test: two-sided binomial test of the discordant pairs b ~ Bin(b + c, 1/2) (McNemar 1947).
- Newcombe's hybrid score interval for a difference of paired proportions (Newcombe 1998, Stat Med
  17:2635-2650, method 10, with the corrected phi of Newcombe / Altman et al. 2000 "Statistics with
  Confidence", p. 52; same as R biostatUZH::confIntPairedProportion and contingencytables).
- Newcombe's hybrid score interval for two independent proportions (Newcombe 1998, Stat Med 17:873-890,
  method 10), used when runs are compared.
- Cohen's kappa (Cohen 1960, Educ Psychol Meas 20:37-46).
- Holm's step-down adjustment of the McNemar p-values across a table (Holm 1979).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

Z95 = 1.959963984540054  # scipy.stats.norm.ppf(0.975)


def wilson_ci(k, n, z: float = Z95):
    """Wilson score interval for k successes in n trials (arrays or scalars); NaN where n == 0."""
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = k / n
        z2 = z * z
        denom = 1 + z2 / n
        centre = (p + z2 / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
        # min/max with p: at k = 0 or k = n rounding can put a bound a hair past the estimate.
        lo = np.where(n > 0, np.clip(np.minimum(centre - half, p), 0.0, 1.0), np.nan)
        hi = np.where(n > 0, np.clip(np.maximum(centre + half, p), 0.0, 1.0), np.nan)
    return _scalar(lo), _scalar(hi)


def _scalar(x):
    """0-d results come back as Python floats, arrays stay arrays."""
    return float(x) if np.ndim(x) == 0 else x


def mcnemar_exact_p(b, c):
    """Two-sided exact McNemar p-value: binomial test of b discordant pairs out of b + c at p = 1/2.
    Equals scipy.stats.binomtest(b, b + c, 0.5).pvalue; 1.0 when there are no discordant pairs."""
    from scipy.stats import binom

    b = np.asarray(b, dtype=float)
    c = np.asarray(c, dtype=float)
    m = b + c
    # The null distribution is symmetric, so the two-sided p doubles the smaller tail.
    p = 2.0 * binom.cdf(np.minimum(b, c), m, 0.5)
    p = np.where(b == c, 1.0, p)
    return _scalar(np.minimum(p, 1.0))


def _phi_corrected(a, b, c, d):
    """Newcombe's phi for method 10: (ad - bc - n/2)/sqrt(...) if ad - bc > n/2, 0 if 0 <= ad - bc <= n/2,
    (ad - bc)/sqrt(...) if negative; 0 when a margin is empty."""
    n = a + b + c + d
    prod = (a + b) * (c + d) * (a + c) * (b + d)
    diff = a * d - b * c
    num = np.where(diff > n / 2, diff - n / 2, np.where(diff >= 0, 0.0, diff))
    with np.errstate(divide="ignore", invalid="ignore"):
        phi = np.where(prod > 0, num / np.sqrt(prod), 0.0)
    return phi


def newcombe_paired_ci(a, b, c, d, z: float = Z95):
    """95% CI for p1 - p2 = (b - c)/n in a paired 2x2 table (a: both positive, b: first only, c: second only,
    d: neither); Newcombe (1998) method 10. Returns (diff, lo, hi); NaN where n == 0."""
    a, b, c, d = (np.asarray(x, dtype=float) for x in (a, b, c, d))
    n = a + b + c + d
    with np.errstate(divide="ignore", invalid="ignore"):
        p1 = (a + b) / n
        p2 = (a + c) / n
    l1, u1 = wilson_ci(a + b, n, z)
    l2, u2 = wilson_ci(a + c, n, z)
    phi = _phi_corrected(a, b, c, d)
    diff = p1 - p2
    dl = np.sqrt(np.maximum((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2, 0))
    du = np.sqrt(np.maximum((p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1) + (u1 - p1) ** 2, 0))
    lo = np.where(n > 0, np.maximum(diff - dl, -1.0), np.nan)
    hi = np.where(n > 0, np.minimum(diff + du, 1.0), np.nan)
    return _scalar(diff), _scalar(lo), _scalar(hi)


def newcombe_diff_ci(k1, n1, k2, n2, z: float = Z95):
    """95% CI for p1 - p2 of two independent proportions, Newcombe (1998) hybrid score (method 10)."""
    k1, n1, k2, n2 = (np.asarray(x, dtype=float) for x in (k1, n1, k2, n2))
    with np.errstate(divide="ignore", invalid="ignore"):
        p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_ci(k1, n1, z)
    l2, u2 = wilson_ci(k2, n2, z)
    diff = p1 - p2
    lo = diff - np.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    hi = diff + np.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return _scalar(diff), _scalar(lo), _scalar(hi)


def cohen_kappa(both_pos, only_first, only_second, both_neg):
    """Cohen's kappa for two raters and two categories from the 2x2 counts; NaN when chance agreement is 1
    (both raters constant: kappa is undefined)."""
    a, b, c, d = (np.asarray(x, dtype=float) for x in (both_pos, only_first, only_second, both_neg))
    n = a + b + c + d
    with np.errstate(divide="ignore", invalid="ignore"):
        po = (a + d) / n
        pe = ((a + b) * (a + c) + (c + d) * (b + d)) / (n * n)
        kappa = np.where((n > 0) & (pe < 1), (po - pe) / (1 - pe), np.nan)
    return _scalar(po), _scalar(kappa)


def holm(pvalues) -> np.ndarray:
    """Holm (1979) step-down adjusted p-values (NaNs are left out and stay NaN)."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full_like(p, np.nan)
    ok = ~np.isnan(p)
    idx = np.flatnonzero(ok)
    if idx.size == 0:
        return out
    order = idx[np.argsort(p[idx], kind="stable")]
    m = order.size
    adj = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out[order] = np.minimum(adj, 1.0)
    return out


def with_rate(df: pd.DataFrame, k: str, n: str, prefix: str = "") -> pd.DataFrame:
    """Add ``{prefix}rate``, ``{prefix}ci_low``, ``{prefix}ci_high`` (Wilson) for count columns k of n."""
    with np.errstate(divide="ignore", invalid="ignore"):
        df[f"{prefix}rate"] = np.where(df[n] > 0, df[k] / df[n].where(df[n] > 0, 1), np.nan)
    lo, hi = wilson_ci(df[k].to_numpy(), df[n].to_numpy())
    df[f"{prefix}ci_low"] = lo
    df[f"{prefix}ci_high"] = hi
    return df

