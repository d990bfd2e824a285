"""The ``tracesafe`` command line. Each command reads files and writes files, so every stage runs alone.

One module per command group (``_app.COMMANDS`` says which), imported only when one of its commands runs or
``--help`` lists them; heavy libraries (torch, transformers, vllm, pandas, matplotlib) are imported inside
the commands that need them. Options several commands share are declared once in ``_options``.
"""

from __future__ import annotations

from ._app import COMMANDS, INSTALL, TopGroup, Typer, fail

__all__ = ["COMMANDS", "INSTALL", "app", "fail", "main"]

app = Typer(
    cls=TopGroup,
    help="tracesafe: is a reasoning model's thinking more dangerous than its answer?\n\n"
    "Stages: generate -> split -> judge -> report; `run CONFIG.toml` chains them, `demo` runs the offline default.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    # The commands come from TopGroup's table; a callback makes typer build a group with none registered.
    pass


def main() -> None:  # pragma: no cover
    app()
