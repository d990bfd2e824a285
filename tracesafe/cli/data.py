"""Data commands: `import` traces made elsewhere, `export` a run as one table, `merge` shards, `suites`."""

from __future__ import annotations

import dataclasses
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..importers import IMPORTERS, ImportOptions
from ._app import DATA, Typer, fail
from ._options import BadLineOpt, OnBadLine, ReasoningFormatOpt, plain

app = Typer()
suites_app = Typer(help="Built-in and user prompt suites.", no_args_is_help=True)
app.add_typer(suites_app, name="suites", rich_help_panel=DATA)

ImportFormat = Enum("ImportFormat", {name: name for name in IMPORTERS}, type=str)
_LISTING = "; ".join(f"{name}: {imp.help}" for name, imp in IMPORTERS.items())
_OPTIONS = {f.name for f in dataclasses.fields(ImportOptions)}
I = ImportOptions()  # the defaults


@app.command("import", rich_help_panel=DATA,
             help=f"Import traces made elsewhere as Trace records (thinking/answer split on the fly).\n\nFormats: {_LISTING}.")  # fmt: skip
def import_cmd(
    ctx: typer.Context,
    format: Annotated[ImportFormat, typer.Argument(help="Source format (listed above).", show_default=False)],
    input: Annotated[Path, typer.Argument(help="File (or datasets folder) to import.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Trace JSONL to write (split on the fly).")],
    model: Annotated[str, typer.Option(help="Model name to record (else read from the file where it has one).")] = I.model,
    prompt_field: Annotated[Optional[str], typer.Option(help="Field holding the user prompt (dotted path for nested).")] = I.prompt_field,
    response_field: Annotated[Optional[str], typer.Option(help="Field holding the model output (table formats).")] = I.response_field,
    reasoning_field: Annotated[Optional[str], typer.Option(help="Field holding a separate reasoning text (table formats).")] = I.reasoning_field,
    id_field: Annotated[Optional[str], typer.Option(help="Field holding a prompt id (else the source's id or a content hash).")] = I.id_field,
    category_field: Annotated[Optional[str], typer.Option(help="Field holding the category (report's by-category tables).")] = I.category_field,
    harm_area_field: Annotated[Optional[str], typer.Option(help="Field holding the harm area.")] = I.harm_area_field,
    label_field: Annotated[Optional[str], typer.Option(help="Field holding harmful/benign (unsafe/safe, 1/0).")] = I.label_field,
    on_bad_line: BadLineOpt = OnBadLine(I.on_bad_line),
    reasoning_format: ReasoningFormatOpt = I.reasoning_format,
):
    from ..importers import import_file

    if not input.exists():
        fail(f"{input}: no such file")
    try:  # every option but the positional ones is an ImportOptions field of the same name
        n = import_file(format.value, input, output, **{k: plain(v) for k, v in ctx.params.items() if k in _OPTIONS})
    except ValueError as e:
        fail(str(e))
    typer.echo(f"imported {n} traces -> {output}", err=True)


class ExportAs(str, Enum):
    parquet = "parquet"
    datasets = "datasets"


@app.command("export", rich_help_panel=DATA)
def export_cmd(
    inputs: Annotated[list[Path], typer.Argument(help="A run directory, or trace files and one verdict file: one row per trace x segment x judge. One record file alone is exported as it is.", show_default=False)],
    output: Annotated[Path, typer.Option("-o", "--output", help="Parquet file; with --as datasets, a folder.")],
    as_: Annotated[ExportAs, typer.Option("--as", help="parquet: one file; datasets: a Hugging Face save_to_disk folder (needs `pip install datasets`).")] = ExportAs.parquet,
    on_bad_line: BadLineOpt = OnBadLine.error,
):
    """A whole run as one tidy table for pandas or a hub: prompt, model, category, segment, judge, verdict, score,
    spans (errors stay rows). `tracesafe export RUN_DIR -o run.parquet`."""
    from ..export import export_records, export_run
    from ..report import resolve_inputs

    try:
        if len(inputs) == 1 and not inputs[0].is_dir():
            n = export_records(inputs[0], output, as_=as_.value, on_bad_line=on_bad_line.value)
            typer.echo(f"exported {n} rows -> {output}", err=True)
            return
        traces, verdicts, _ = resolve_inputs(inputs)
        if not traces or verdicts is None:
            fail("give RUN_DIR, or trace files and one verdict file")
        c = export_run(traces, verdicts, output, as_=as_.value, on_bad_line=on_bad_line.value)
    except ValueError as e:
        fail(str(e))
    notes = [f"{c[k]} {what}" for k, what in (("errors", "error verdicts (kept as rows)"),
             ("duplicates", "repeated verdicts (the last kept)"), ("orphans", "verdicts without their trace (kept)"),
             ("unjudged", "traces without a verdict (not in the table)")) if c[k]]  # fmt: skip
    typer.echo(f"exported {c['rows']} rows -> {output}" + (f" ({'; '.join(notes)})" if notes else ""), err=True)


@app.command("merge", rich_help_panel=DATA)
def merge_cmd(
    inputs: Annotated[list[Path], typer.Argument(help="Shard files of one run.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Merged JSONL.")],
):
    """Merge shards (e.g. from `generate --shard I/N`): dedupe by id, check they agree on model and params."""
    from ..store import merge

    missing = [str(p) for p in inputs if not p.exists()]
    if missing:
        fail(f"no such file: {', '.join(missing)}")
    try:
        counts = merge(inputs, output)
    except ValueError as e:
        fail(str(e))
    typer.echo(f"merged {counts['written']} records ({counts['duplicates']} duplicates dropped) -> {output}", err=True)


@suites_app.command("list")
def suites_list():
    """List the built-in prompt suites."""
    from ..suites import BUILTIN

    for name, (_, desc) in BUILTIN.items():
        typer.echo(f"{name:10s} {desc}")


@suites_app.command("show")
def suites_show(
    name: Annotated[str, typer.Argument(help="Built-in suite name or a CSV/JSONL/Parquet file.")],
    text: Annotated[bool, typer.Option(help="Print prompt texts (harmful by design; off by default).")] = False,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Write the suite as Prompt JSONL.")] = None,
):
    """Summarise a suite: counts by label, harm area and category."""
    from collections import Counter

    from ..store import OutputError, write_jsonl
    from ..suites import load_suite, suite_hash

    try:
        prompts = load_suite(name)
    except ValueError as e:
        fail(str(e))
    typer.echo(f"{name}: {len(prompts)} prompts, hash {suite_hash(prompts)}")
    for field in ("label", "harm_area", "category"):
        c = Counter(getattr(p, field) for p in prompts)
        typer.echo(f"  by {field}: " + "; ".join(f"{k}: {v}" for k, v in sorted(c.items(), key=str)))
    if text:
        for p in prompts:
            typer.echo(f"{p.id}\t{p.text}")
    if output:
        try:
            write_jsonl(output, prompts, inputs=[name] if Path(name).exists() else [])
        except OutputError as e:
            fail(str(e))
        typer.echo(f"wrote {len(prompts)} prompts -> {output}", err=True)
