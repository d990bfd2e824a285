"""Judge commands: `judge` traces, `judges list`, and `judge-eval` against human labels. The judge options
(models, backend, batch size, -O) are declared once here for both."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..runconfig import JudgeSection
from ._app import JUDGES, PIPELINE, Typer, fail, sigterm_interrupts
from ._options import (
    BadLineOpt,
    EngineOptionOpt,
    OnBadLine,
    ReasoningFormatOpt,
    engine_options,
    key_values,
)

app = Typer()
J = JudgeSection()  # the defaults, shared with run configs
judges_app = Typer(help="Harm and refusal judges.", no_args_is_help=True)
app.add_typer(judges_app, name="judges", rich_help_panel=JUDGES)


def _judge_options(values: list[str], engine: list[str]) -> dict:
    """-O KEY=VALUE (every judge that takes KEY) or -O NAME.KEY=VALUE (judge NAME only), TOML values; -E KEY=VALUE
    engine settings for the model judges (their ``engine_options``)."""
    out: dict = {"engine_options": engine_options(engine)} if engine else {}
    for key, val in key_values(values, "-O", "JUDGE.KEY=VALUE").items():
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
        from ..judges import list_judges

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
    judge: Annotated[list[str], typer.Option("-j", "--judge", help="Judge name (repeatable); `tracesafe judges list`.")] = J.judges,
    segments: Annotated[str, typer.Option("--segments", help="Comma-separated: thinking, answer, full.")] = ",".join(J.segments),
    judge_model: JudgeModelOpt = [],
    backend: BackendOpt = None,
    batch_size: BatchSizeOpt = None,
    cache_dir: Annotated[Optional[Path], typer.Option("--cache-dir", help="Verdict cache folder (default: .judge-cache beside the output).")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Neither read nor write the verdict cache (resume still works).")] = False,
    retry_errors: Annotated[bool, typer.Option("--retry-errors", help="Re-judge verdicts that ended in status=error.")] = False,
    option: JudgeOptionOpt = [],
    engine_option: EngineOptionOpt = [],
    on_bad_line: BadLineOpt = OnBadLine.error,
    reasoning_format: ReasoningFormatOpt = None,
):
    """Judge every trace x segment with every judge: one Verdict per line (status ok|error), resumable and cached."""
    from ..judges import run_judges

    segs = [s.strip() for s in segments.split(",") if s.strip()]
    try:
        with sigterm_interrupts(f"the verdicts written so far are in {output}; rerun the same command to resume"):
            stats = run_judges(traces, judge, segs, output, judge_model=_judge_models(judge_model), backend=backend,
                               batch_size=batch_size, cache_dir=None if no_cache else (cache_dir or "auto"),
                               retry_errors=retry_errors, on_bad_line=on_bad_line.value, reasoning_format=reasoning_format,
                               **_judge_options(option, engine_option))
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
    from ..judges import list_judges

    for info in list_judges():
        model = f" [model: {getattr(info.cls, 'default_model', '')}]" if info.needs_model else ""
        typer.echo(f"{info.name:14s} {info.kind:8s} v{info.version}  {info.description}{model}")


@app.command("judge-eval", rich_help_panel=JUDGES)
def judge_eval_cmd(
    judge: Annotated[str, typer.Option("--judge", help="Judge name.")],
    gold: Annotated[Path, typer.Option("--gold", help="Human labels: XSTest completions CSV (refusal), PyRIT scorer-eval CSV, JSONL {prompt, response, unsafe|refused[, segment, kind]}, or a built-in set: `contrast` (safe deliberation vs harmful reasoning, judged as thinking), `blind-safe` (safe thinking written apart from the offline judge's templates), `multilingual-refusal` (Spanish, French, German and Portuguese answers), `multilingual-safe` (safe thinking in those languages), `multilingual-thinking` (safe thinking in six languages, and English full of foreign words).")],
    judge_model: JudgeModelOpt = [],
    backend: BackendOpt = None,
    batch_size: BatchSizeOpt = None,
    segment: Annotated[str, typer.Option("--segment", help="Judge the gold responses as this segment (answer|thinking).")] = "answer",
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
    card: Annotated[Optional[Path], typer.Option("--card", help="Write a judge card (JSON: the confusion counts, sensitivity, specificity, gold set and hash) for `report --judge-card`.")] = None,
    option: JudgeOptionOpt = [],
    engine_option: EngineOptionOpt = [],
):
    """Measure a judge against human labels: accuracy, precision, recall, F1, Cohen's kappa (accuracy and kappa with
    95% intervals), n, errors; per kind
    of gold item (e.g. `--gold contrast`) the false-positive rate on safe kinds and the recall on harmful ones."""
    import json

    from ..judges import evaluate_judge

    try:
        m = evaluate_judge(judge, gold, judge_model=_judge_models(judge_model), backend=backend, batch_size=batch_size,
                           segment=segment, **_judge_options(option, engine_option))
    except ValueError as e:
        fail(str(e))
    card_error = None
    if card is not None:
        from ..cards import CardError, card_from_eval
        from ..store import atomic_output

        try:
            card_json = json.dumps(card_from_eval(m, m.get("by_segment")), indent=1) + "\n"
        except CardError as e:
            card_error = f"no judge card written: {e}"  # after the metrics: they cost the judging to get
        else:
            with atomic_output(card, lock=False) as tmp:  # a small one-shot file: no lock file left beside it
                Path(tmp).write_text(card_json, encoding="utf-8")
    _print_eval(m, as_json)
    if card_error:
        fail(card_error)
    if card is not None and not as_json:
        typer.echo(f"judge card: {card}")


def _print_eval(m: dict, as_json: bool) -> None:
    import json

    from ..judges import METRICS

    if as_json:
        typer.echo(json.dumps(m, indent=1))
        return
    typer.echo(f"{m['judge']} v{m['judge_version']} on {m['gold']} ({m['kind']} labels, n={m['n']}, errors={m['errors']})")
    for k in METRICS:
        ci = m.get(f"{k}_ci")
        typer.echo(f"  {k:9s} " + (f"undefined ({_why_undefined(k, m)})" if m[k] is None else f"{m[k]:.4f}")
                   + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci and m[k] is not None else ""))
    typer.echo(f"  confusion tp={m['tp']} fp={m['fp']} fn={m['fn']} tn={m['tn']}")
    for e in dict.fromkeys(m.get("error_examples", [])):  # why items went undecided (the offline judge declines)
        typer.echo(f"  error     {e}")
    for name, k in m.get("by_kind", {}).items():
        if k["n"]:
            typer.echo(f"  {name:18s} {k['metric']:19s} {k['rate']:.3f} [{k['ci_low']:.3f}, {k['ci_high']:.3f}] "
                       f"({k['flagged']}/{k['n']} flagged)")
        else:
            typer.echo(f"  {name:18s} no decided item (all errors)")


def _why_undefined(metric: str, m: dict) -> str:
    """Why ``metric`` is 0/0 in judge-eval's counts (``_eval.metrics`` gives None)."""
    positive = "refused" if m["kind"] == "refusal" else "unsafe"
    return {"accuracy": "no decided item", "precision": "the judge flagged no item",
            "recall": f"no {positive} item in the gold set", "f1": f"the judge flagged no item and no {positive} item is in the gold set",
            "kappa": "the gold set and the judge use one and the same label for every item"}[metric]  # fmt: skip
