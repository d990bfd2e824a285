"""`tracesafe run CONFIG.toml` (generate -> split -> judge -> report in one run directory) and `tracesafe demo`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ._app import PIPELINE, Typer, fail, sigterm_interrupts
from ._options import key_values

app = Typer()


@app.command("run", rich_help_panel=PIPELINE)
def run_cmd(
    config: Annotated[Path, typer.Argument(help="Run config (TOML): suites or traces, models, judges, report.")],
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Run directory (default runs/<name>).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan (prompts x samples x models, judge passes) and exit.")] = False,
    set_: Annotated[list[str], typer.Option("--set", help="Override a config key, e.g. --set run.limit=10 (repeatable).")] = [],
    smoke: Annotated[bool, typer.Option("--smoke", help="Check the config end to end on CPU: tiny test model, 3 prompts, judges needing no download.")] = False,
    tiny_model: Annotated[Optional[Path], typer.Option(help="With --smoke: the tiny model directory (built and cached if absent).")] = None,
):
    """Chain generate -> split -> judge -> report into a run directory; rerun resumes, a finished run does nothing."""
    from ..runner import config_warnings, load_config, plan, run

    smoke_model = None
    if smoke:
        from ..tinymodel import build_tiny_r1, default_tiny_dir

        smoke_model = str(build_tiny_r1(tiny_model or default_tiny_dir()))
    try:
        cfg = load_config(config, key_values(set_, "--set", "run.limit=10"), smoke_model=smoke_model)
        for warning in config_warnings(cfg):  # before anything is sent or run
            typer.secho(warning, fg="yellow", err=True)
        if dry_run:
            typer.echo("\n".join(plan(cfg)))
            return
        import json

        run_dir = output or Path("runs") / cfg.name
        with sigterm_interrupts(f"what finished is kept in {run_dir}; rerun the same command to resume"):
            html = run(cfg, run_dir, log=lambda m: typer.echo(m, err=True))
    except ValueError as e:
        fail(str(e))
    typer.echo(f"report: {html}")
    incomplete = json.loads((run_dir / "manifest.json").read_text()).get("incomplete")
    if incomplete:  # the report covers what finished; the exit status says the run is not complete
        typer.echo(f"incomplete: failed requests {incomplete} (the report says so); rerun the same command to retry "
                   "them (one the server refused, HTTP 4xx, is likely refused again)", err=True)  # fmt: skip
        raise typer.Exit(1)


def _default_traces_dir() -> Path:
    here = Path("traces")
    if (here / "demo.toml").exists():
        return here
    return Path(__file__).resolve().parents[2] / "traces"


@app.command("demo", rich_help_panel=PIPELINE)
def demo_cmd(
    output: Annotated[Path, typer.Option("-o", "--output", help="Directory for the demo run and its report.")] = Path("demo-report"),
    traces_dir: Annotated[Optional[Path], typer.Option(help="Folder with demo.toml and the sample traces.")] = None,
):
    """The embedded default: judge the SYNTHETIC sample traces in traces/ with the offline judges and write a report."""
    from ..runner import load_config, run

    folder = traces_dir or _default_traces_dir()
    if not (folder / "demo.toml").exists():
        fail(f"{folder}/demo.toml not found; pass --traces-dir (the repository's traces/ folder)")
    html = run(load_config(folder / "demo.toml"), output, log=lambda m: typer.echo(m, err=True))
    typer.echo(f"report: {html}  (synthetic sample traces: an illustration, not findings)")
