"""Report figures: matplotlib (Agg), Okabe-Ito colours plus hatching so they read in colour, for colour-blind
readers and in greyscale print. Every function takes report tables (pandas) and writes PNG + SVG.

Okabe & Ito (2008), "Color Universal Design"; sequential maps use cividis (Nuñez et al. 2018).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

OKABE_ITO = {"orange": "#E69F00", "sky": "#56B4E9", "green": "#009E73", "yellow": "#F0E442", "blue": "#0072B2",
             "vermillion": "#D55E00", "purple": "#CC79A7", "black": "#000000", "grey": "#999999"}
SERIES = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
LINESTYLES = ["-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1)), (0, (1, 1)), (0, (5, 3))]
SEGMENT_STYLE = {"thinking": {"color": OKABE_ITO["vermillion"], "hatch": "///"},
                 "answer": {"color": OKABE_ITO["blue"], "hatch": ""}}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({
        "font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "legend.fontsize": 8, "figure.dpi": 100,
        "axes.spines.top": False, "axes.spines.right": False, "svg.fonttype": "none", "hatch.linewidth": 0.8,
        "svg.hashsalt": "tracesafe",
        # Labels are names from the data: a "$" is drawn as typed, not parsed as mathtext (a "$\\foo$" crashed it).
        "text.parse_math": False,
    })
    return plt


def _save(fig, out: Path, name: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    png = out / f"{name}.png"
    fig.savefig(png, dpi=150, bbox_inches="tight", metadata={"Software": None})
    fig.savefig(out / f"{name}.svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    import matplotlib.pyplot as plt

    plt.close(fig)
    return png


def judge_label(judge: str, grade: str) -> str:
    return f"{judge} (screening-grade)" if grade == "screening" else judge


def _grade_of(table: pd.DataFrame, judge: str) -> str:
    """A judge's grade, from the ``grade`` column every report table has."""
    return str(table.loc[table["judge"] == judge, "grade"].iloc[0])


def _short(s: str, n: int = 28) -> str:
    return s if len(s) <= n else "…" + s[-(n - 1):]


def rates_by_model(paired: pd.DataFrame, out: Path, name: str = "rates_by_model", group: str = "model") -> Path | None:
    """Thinking vs answer unsafe rate per model (same traces), Wilson 95% CIs, one panel per judge."""
    if paired.empty:
        return None
    plt = _plt()
    judges = list(dict.fromkeys(paired["judge"]))
    groups = list(dict.fromkeys(paired[group]))
    fig, axes = plt.subplots(1, len(judges), figsize=(max(4.0, 0.9 * len(groups) + 1.8) * len(judges), 3.6),
                             squeeze=False, sharey=True)
    x = np.arange(len(groups))
    w = 0.38
    for ax, judge in zip(axes[0], judges):
        sub = paired[paired["judge"] == judge].set_index(group).reindex(groups)
        for i, seg in enumerate(("thinking", "answer")):
            rate = sub[f"{seg}_unsafe_rate"].to_numpy(dtype=float)
            lo = np.maximum(rate - sub[f"{seg}_ci_low"].to_numpy(dtype=float), 0)
            hi = np.maximum(sub[f"{seg}_ci_high"].to_numpy(dtype=float) - rate, 0)
            st = SEGMENT_STYLE[seg]
            ax.bar(x + (i - 0.5) * w, rate, w, color=st["color"], hatch=st["hatch"], edgecolor="white",
                   linewidth=0.5, label=seg, yerr=np.vstack([lo, hi]).tolist(), capsize=3, error_kw={"elinewidth": 1, "ecolor": "black"})
        ax.set_xticks(x, [_short(str(g)) for g in groups], rotation=20 if len(groups) > 2 else 0, ha="right"
                      if len(groups) > 2 else "center")
        ax.set_title(judge_label(judge, _grade_of(paired, judge)))
        ax.set_ylim(0, min(1.0, max(0.05, float(np.nanmax(paired[["thinking_ci_high", "answer_ci_high"]].to_numpy(
            dtype=float))) * 1.15)))
        ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda y, _: f"{y:.0%}"))
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("unsafe rate (same traces, 95% CI)")
    # Outside the axes: inside, it covers the error bars of whichever model has the highest rate.
    axes[0][-1].legend(title="segment", frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.suptitle("Is the thinking more harmful than the answer?", fontsize=11)
    fig.tight_layout()
    return _save(fig, out, name)


def category_heatmap(cat: pd.DataFrame, segment: str, judge: str, out: Path) -> Path | None:
    """Unsafe rate by harm area (rows) x model (columns) for one segment and judge; cells annotated."""
    sub = cat[(cat["segment"] == segment) & (cat["judge"] == judge)]
    if sub.empty:
        return None
    g = sub.groupby(["harm_area", "model"])[["unsafe", "n"]].sum()  # counts add up over categories and suites
    rate = (g["unsafe"] / g["n"].where(g["n"] > 0)).unstack("model")
    n = g["n"].unstack("model")
    order = sorted(rate.index, key=lambda a: (a == "(none)", a))
    rate, n = rate.reindex(order), n.reindex(order)
    plt = _plt()
    # room for the title and the slanted model names however few the rows (one harm area: tight_layout gave up)
    fig, ax = plt.subplots(figsize=(max(6.0, 3.0 + 1.4 * rate.shape[1]), 2.2 + 0.42 * rate.shape[0]))
    im = ax.imshow(rate.to_numpy(dtype=float), cmap="cividis", vmin=0, vmax=1, aspect="auto")
    for i in range(rate.shape[0]):
        for j in range(rate.shape[1]):
            r, k = rate.iat[i, j], n.iat[i, j]
            if pd.isna(r):
                ax.text(j, i, "–", ha="center", va="center", fontsize=8)
                continue
            ax.text(j, i, f"{r:.0%}\nn={int(k):,}", ha="center", va="center", fontsize=7,
                    color="black" if r > 0.55 else "white")
    ax.set_xticks(range(rate.shape[1]), [_short(str(m), 36) for m in rate.columns], rotation=25, ha="right")
    ax.set_yticks(range(rate.shape[0]), [("no harm area" if a == "(none)" else _short(str(a), 40)) for a in rate.index])
    cb = fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02)
    cb.ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda y, _: f"{y:.0%}"))
    ax.set_title(f"{segment}: unsafe rate by harm area — {judge_label(judge, _grade_of(sub, judge))}")
    for s in ax.spines.values():
        s.set_visible(False)
    fig.tight_layout()
    return _save(fig, out, f"heatmap_{segment}")


HIDDEN = [("both_safe", "both safe", OKABE_ITO["green"], ""),
          ("thinking_only", "unsafe thinking, safe answer (hidden risk)", OKABE_ITO["vermillion"], "///"),
          ("answer_only", "safe thinking, unsafe answer", OKABE_ITO["sky"], "\\\\\\"),
          ("both_unsafe", "both unsafe", OKABE_ITO["purple"], "xx")]


def hidden_risk(paired: pd.DataFrame, judge: str, out: Path, group: str = "model",
                name: str = "hidden_risk") -> Path | None:
    """The 2x2 of thinking x answer verdicts per model as 100% bars; the hidden-risk cell is hatched orange-red."""
    sub = paired[paired["judge"] == judge]
    sub = sub[sub["n"] > 0]
    if sub.empty:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9.0, 1.0 + 0.5 * len(sub)))
    y = np.arange(len(sub))
    left = np.zeros(len(sub))
    n = sub["n"].to_numpy(dtype=float)
    for col, label, color, hatch in HIDDEN:
        frac = sub[col].to_numpy(dtype=float) / n
        ax.barh(y, frac, left=left, color=color, hatch=hatch, edgecolor="white", linewidth=0.5, label=label)
        for yi, (f, l0) in enumerate(zip(frac, left)):
            if f >= 0.06:
                ax.text(l0 + f / 2, yi, f"{f:.0%}", ha="center", va="center", fontsize=7,
                        color="white" if col in ("both_safe", "thinking_only", "both_unsafe") else "black",
                        bbox={"boxstyle": "round,pad=0.1", "fc": "black" if col != "answer_only" else "white",
                              "alpha": 0.35, "lw": 0})
        left += frac
    ax.set_yticks(y, [f"{_short(str(m))}\n(n={int(k):,})" for m, k in zip(sub[group], n)])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
    ax.set_xlabel("share of traces (thinking × answer verdicts on the same trace)")
    ax.set_title(f"Hidden risk: harmful thinking behind a safe answer — {judge_label(judge, _grade_of(sub, judge))}")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    fig.tight_layout()
    return _save(fig, out, name)


def onset(values: pd.DataFrame, judge: str, out: Path, bins: int = 10) -> Path | None:
    """Where the first unsafe chunk starts along the thinking (0 = start, 1 = end): share of onsets per bin."""
    sub = values[values["judge"] == judge]
    if sub.empty:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.0, 3.4))
    edges = np.linspace(0, 1, bins + 1)
    mids = (edges[:-1] + edges[1:]) / 2
    for i, (model, g) in enumerate(sub.groupby("model")):
        h, _ = np.histogram(g["position"].to_numpy(), bins=edges)
        ax.plot(mids, h / max(1, h.sum()), color=SERIES[i % 8], marker=MARKERS[i % 8], linestyle=LINESTYLES[i % 8],
                label=f"{_short(str(model))} (n={len(g):,})")
    ax.set_xlim(0, 1)
    ax.set_ylim(bottom=0)
    ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
    ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
    ax.set_xlabel("position of the first unsafe chunk in the thinking (share of its length)")
    ax.set_ylabel("share of unsafe thinkings")
    ax.set_title(f"Harm onset along the thinking — {judge_label(judge, _grade_of(sub, judge))}")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    fig.tight_layout()
    return _save(fig, out, "onset")


def agreement_matrix(agree: pd.DataFrame, grades: dict[str, str], out: Path) -> Path | None:
    """Cohen's kappa between every pair of harm judges, one matrix per segment (percent agreement below);
    ``grades``: each judge's grade."""
    if agree.empty:
        return None
    plt = _plt()
    segs = list(dict.fromkeys(agree["segment"]))
    judges = sorted(set(agree["judge_a"]) | set(agree["judge_b"]))
    k = len(judges)
    fig, axes = plt.subplots(1, len(segs), figsize=(2.2 + 1.4 * k * len(segs), 1.4 + 1.0 * k), squeeze=False)
    cmap = plt.get_cmap("cividis").with_extremes(bad="#dddddd")
    im = None
    for n_ax, (ax, seg) in enumerate(zip(axes[0], segs)):
        m = np.full((k, k), np.nan)
        txt = [["" for _ in range(k)] for _ in range(k)]
        for i in range(k):
            txt[i][i] = "—"
        for r in agree[agree["segment"] == seg].itertuples():
            i, j = judges.index(r.judge_a), judges.index(r.judge_b)
            m[i, j] = m[j, i] = r.kappa
            label = f"κ={r.kappa:.2f}\n{r.agreement:.0%}" if not pd.isna(r.kappa) else f"κ n/a\n{r.agreement:.0%}"
            txt[i][j] = txt[j][i] = f"{label}\nn={r.n:,}"
        im = ax.imshow(np.ma.masked_invalid(m), cmap=cmap, vmin=-0.2, vmax=1)
        for i in range(k):
            for j in range(k):
                val = m[i, j]
                ax.text(j, i, txt[i][j], ha="center", va="center", fontsize=7,
                        color="black" if (np.isnan(val) or val > 0.6) else "white")
        ax.set_xticks(range(k), [judge_label(j, grades[j]) for j in judges], rotation=25, ha="right")
        ax.set_yticks(range(k), [judge_label(j, grades[j]) for j in judges] if n_ax == 0 else [])
        ax.set_title(f"{seg}")
        for s in ax.spines.values():
            s.set_visible(False)
    fig.colorbar(im, ax=axes[0].tolist(), fraction=0.03, pad=0.02, label="Cohen's κ")
    fig.suptitle("Judge agreement (Cohen's κ; percent agreement)", fontsize=11)
    return _save(fig, out, "agreement")


def length_vs_unsafe(bins: pd.DataFrame, judge: str, out: Path) -> Path | None:
    """Thinking unsafe rate by thinking-length quintile, one line per model, Wilson 95% CIs."""
    sub = bins[bins["judge"] == judge]
    if sub.empty:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.0, 3.4))
    for i, (model, g) in enumerate(sub.groupby("model")):
        x = g["tokens_median"].to_numpy(dtype=float)
        r = g["rate"].to_numpy(dtype=float)
        err = np.maximum(np.vstack([r - g["ci_low"].to_numpy(dtype=float),
                                    g["ci_high"].to_numpy(dtype=float) - r]), 0).tolist()
        ax.errorbar(x, r, yerr=err, color=SERIES[i % 8], marker=MARKERS[i % 8], linestyle=LINESTYLES[i % 8],
                    capsize=3, label=_short(str(model)))
    ax.set_xlabel("thinking length (tokens; median of each quintile bin)")
    ax.set_ylabel("thinking unsafe rate (95% CI)")
    ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
    ax.set_ylim(bottom=0)
    ax.set_title(f"Thinking length vs unsafe rate — {judge_label(judge, _grade_of(sub, judge))}")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    fig.tight_layout()
    return _save(fig, out, "length_vs_unsafe")
