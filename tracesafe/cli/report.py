"""`tracesafe report` (tables, figures, report.html) and `tracesafe compare` (runs side by side)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..runconfig import ReportSection
from ._app import PIPELINE, Typer, fail, sigterm_interrupts
from ._options import BadLineOpt, OnBadLine

app = Typer()


@app.command("report", rich_help_panel=PIPELINE)
def report_cmd(
    inputs: Annotated[Optional[list[Path]], typer.Argument(help="A run directory (traces/*.jsonl, verdicts.jsonl; writes RUN_DIR/report/), or trace files and one verdict file (told apart by their records' schema), with -o.", show_default=False)] = None,
    traces: Annotated[list[Path], typer.Option("--traces", help="Trace JSONL (repeatable), instead of positional files.")] = [],
    verdicts: Annotated[Optional[Path], typer.Option("--verdicts", help="Verdict JSONL, instead of a positional file.")] = None,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Report directory (default RUN_DIR/report).")] = None,
    title: Annotated[Optional[str], typer.Option(help="Report title.")] = ReportSection.title,
    judge_card: Annotated[list[Path], typer.Option("--judge-card", help="A judge card (JSON from `judge-eval --card`; repeatable): adds rates corrected for that judge's measured error.")] = [],
    default_cards: Annotated[bool, typer.Option("--default-cards/--no-default-cards", help="Use the built-in cards of the offline and refusal judges.")] = ReportSection.default_cards,
    on_bad_line: BadLineOpt = OnBadLine.error,
):
    """Tables (CSV, Parquet), figures (PNG, SVG), report.md and a self-contained report.html.

    `tracesafe report RUN_DIR`, or `tracesafe report traces*.jsonl verdicts.jsonl -o OUT` (like `judge`)."""
    from ..report import build_report, resolve_inputs

    try:
        traces, verdicts, run_dir = resolve_inputs(inputs or [], traces, verdicts)
        output = output or (run_dir / "report" if run_dir else None)
        if not traces or verdicts is None or output is None:
            fail("give RUN_DIR, or trace files and one verdict file with -o OUT (or --traces T ... --verdicts V -o OUT)")
        with sigterm_interrupts(f"nothing was replaced in {output} (the report is written whole, at the end)"):
            html = build_report(traces, verdicts, output, title=title, on_bad_line=on_bad_line.value,
                                judge_cards=judge_card, default_cards=default_cards)
    except ValueError as e:
        fail(str(e))
    typer.echo(f"report: {html}")


@app.command("compare", rich_help_panel=PIPELINE)
def compare_cmd(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run directories; the first is the baseline.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Directory for the comparison report.")],
    all_prompts: Annotated[bool, typer.Option("--all-prompts", help="Count each run on all its own prompts, even where the runs' prompts differ (default: only the prompts every run has).")] = False,
    on_bad_line: BadLineOpt = OnBadLine.error,
):
    """Put runs side by side (base vs distilled, before vs after realignment, normal vs zerothink)."""
    from ..report import compare_runs

    if len(run_dirs) < 2:
        fail("compare needs at least two run directories")
    try:
        with sigterm_interrupts(f"nothing was replaced in {output} (the comparison is written whole, at the end)"):
            html = compare_runs(run_dirs, output, on_bad_line=on_bad_line.value, all_prompts=all_prompts)
    except ValueError as e:
        fail(str(e))
    typer.echo(f"report: {html}")
