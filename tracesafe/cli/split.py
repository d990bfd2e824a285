"""`tracesafe split` and `tracesafe formats`. This module is all that `split` imports besides the splitter:
keep heavy imports out of it (start-up is most of the time a split of a few tens of MB takes)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._app import DATA, PIPELINE, Typer, fail, sigterm_interrupts
from ._options import BadLineOpt, OnBadLine, ReasoningFormatOpt

app = Typer()
formats_app = Typer(help="Reasoning-output formats the splitter knows.", no_args_is_help=True)
app.add_typer(formats_app, name="formats", rich_help_panel=DATA)


@app.command("split", rich_help_panel=PIPELINE)
def split_cmd(
    input: Annotated[Path, typer.Argument(help="JSONL with `raw` (and optionally `reasoning`, `prompt_rendered`).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output JSONL (written atomically).")],
    on_bad_line: BadLineOpt = OnBadLine.error,
    format: ReasoningFormatOpt = None,
):
    """Separate thinking from the final answer: adds thinking, answer, split_status, split_rule, split_format."""
    from .. import formats
    from ..split import split_file

    if not input.exists():
        fail(f"{input}: no such file")
    if format not in (None, "auto"):
        try:
            formats.get(format)
        except ValueError as e:
            fail(str(e))
    from .._util.progress import progress

    try:
        with sigterm_interrupts(f"{output} was not written"), progress("split", input.stat().st_size, unit="bytes") as advance:
            counts = split_file(input, output, on_bad_line=on_bad_line.value, progress=advance, format=format)
    except ValueError as e:  # BadLineError is one: the command group names its FILE:LINE the same way
        fail(str(e))
    total = sum(v for k, v in counts.items() if k != "skipped")
    parts = ", ".join(f"{k} {v}" for k, v in counts.items() if v)
    typer.echo(f"split {total} records -> {output}" + (f" ({parts})" if parts else ""), err=True)


@formats_app.command("list")
def formats_list():
    """Each format: name, how it is detected, and its markers."""
    from .. import formats

    found = formats.all_formats()
    width = max(len(f.name) for f in found)
    for f in found:
        how = "text" if f.auto else "name"
        if f.prompt_signatures:
            how += "+prompt"
        typer.echo(f"{f.name:<{width}} {how:<11} {f.description}")
