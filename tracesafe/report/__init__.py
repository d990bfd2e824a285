"""`tracesafe report` / `tracesafe compare`: tables (CSV + Parquet), figures (PNG + SVG), report.md and one
self-contained report.html (figures embedded as base64; opens offline).

``format`` turns numbers and names into report text, ``document`` renders blocks to Markdown and HTML (its
style sheet is ``report.css``), ``sections`` writes the report's sections in order (``SECTIONS``: add a
section there), ``build`` loads, tabulates, plots and writes, ``plots`` draws the figures.

The report never prints prompt or trace texts: only ids, counts and rates.
"""

from .build import (
    build_report,
    compare_runs,
    load,
    resolve_inputs,
    run_inputs,
    sort_inputs,
    write_tables,
)
from .document import Doc
from .format import MARK, ci, csv_safe, judge_disp, md, num, one_line, pct, pval
from .sections import SCREENING_NOTE, SECTIONS, SYNTHETIC_NOTE, Context

__all__ = [
    "MARK", "SCREENING_NOTE", "SECTIONS", "SYNTHETIC_NOTE", "Context", "Doc", "build_report", "ci", "compare_runs",
    "csv_safe", "judge_disp", "load", "md", "num", "one_line", "pct", "pval", "resolve_inputs", "run_inputs", "sort_inputs",
    "write_tables",
]
