"""Mitigations: `reward` (AlphaAlign's verifiable safety reward) and `realign` (SOMF safety realignment)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..realign import RealignConfig
from ..rewards import RewardParams
from ._app import MITIGATIONS, Typer, fail, sigterm_interrupts
from ._options import BadLineOpt, OnBadLine

app = Typer()
R, P = RealignConfig(), RewardParams()  # the defaults


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
    format: Annotated[RewardFormat, typer.Option("--format", help="think: the trace's own thinking; alphaalign: the paper's <safety_reasoning>/<answer> template.")] = RewardFormat(P.fmt),
    r_format: Annotated[float, typer.Option(help="r_f, weight of the format/safety-reasoning verifier.")] = P.r_format,
    r_refusal: Annotated[float, typer.Option(help="r_a, weight of the refusal verifier.")] = P.r_refusal,
    refusal: Annotated[RefusalChoice, typer.Option(help="V_r. paper: AlphaAlign's Appendix B.1 refusal patterns; judge: the project's refusal judge (tracesafe.judges.refusal; not comparable with the paper).")] = RefusalChoice.paper,
    helpfulness_model: Annotated[Optional[Path], typer.Option(help="Local sequence-classification reward model for R_h on benign prompts.")] = None,
    on_bad_line: BadLineOpt = OnBadLine.error,
):
    """AlphaAlign verifiable safety reward (arXiv:2507.14987) for existing traces."""
    from ..rewards import (
        RewardModelScorer,
        RewardParams,
        judge_refusal_detector,
        load_labels,
        paper_refusal,
        reward_file,
        summarise,
    )
    from ..store import read_jsonl

    if not input.exists():
        fail(f"{input}: no such file")
    try:
        params = RewardParams(r_format, r_refusal, format.value)
        label_map = load_labels(labels) if labels else None
        scorer = RewardModelScorer(helpfulness_model) if helpfulness_model else None
        with sigterm_interrupts("nothing was written (the output is written only at the end)"):
            counts = reward_file(
                input,
                output,
                labels=label_map,
                params=params,
                refusal_detector=paper_refusal if refusal == RefusalChoice.paper else judge_refusal_detector(),
                helpfulness_scorer=scorer,
                on_bad_line=on_bad_line.value,
            )
    except ValueError as e:
        fail(str(e))
    if label_map is not None and not counts["labelled_by_file"]:
        typer.echo(f"warning: none of the {len(label_map)} prompt ids of --labels {labels} is a trace's prompt_id; "
                   "the traces' own labels were used", err=True)  # fmt: skip
    for label, s in summarise(read_jsonl(output)).items():
        typer.echo(f"{label:8s} n={s['n']:<6d} reward={s['reward']:.3f} V_f={s['v_format']:.3f} refused={s['refused']:.3f}", err=True)
    dup = f", {counts['duplicate']} repeated trace ids scored once" if counts["duplicate"] else ""
    typer.echo(f"scored {counts['ok']} traces ({counts['error']} errors{dup}) -> {output}", err=True)


class MaskMethod(str, Enum):
    learned = "learned"
    scored = "scored"


@app.command("realign", rich_help_panel=MITIGATIONS)
def realign_cmd(
    aligned: Annotated[Path, typer.Option("--aligned", help="The safety-aligned model (directory).")],
    finetuned: Annotated[list[Path], typer.Option("--finetuned", help="A fine-tuned descendant of it; repeat to fuse several.")],
    safety_data: Annotated[Path, typer.Option("--safety-data", help="JSONL/CSV of harmful prompt + safe response (+ optional rejected).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Directory for the realigned model: new, empty, or an earlier realigned model's (replaced).")],
    mask_method: Annotated[MaskMethod, typer.Option(help="learned: SOMF Concrete mask trained on the safety loss; scored: one-pass gradient x task-vector score.")] = MaskMethod(R.method),
    mask_ratio: Annotated[float, typer.Option(help="Fraction in [0, 1] of masked entries returned to the aligned weights; -1: the paper's threshold (learned p<0.5, scored benefit>0).")] = R.mask_ratio,
    scaling: Annotated[Optional[float], typer.Option(help="Task-arithmetic weight lambda (default 1.0 for one model, 0.3 for several).")] = R.scaling,
    rescale: Annotated[bool, typer.Option(help="Divide the masked task vector by mean(mask) per tensor, as SOMF does.")] = R.rescale,
    include: Annotated[Optional[str], typer.Option(help="Regex of parameter names the mask covers (default all).")] = R.include,
    steps: Annotated[int, typer.Option(help="Mask training steps (learned).")] = R.steps,
    lr: Annotated[float, typer.Option(help="Mask learning rate (learned).")] = R.lr,
    batch_size: Annotated[int, typer.Option(help="Safety examples per step.")] = R.batch_size,
    max_examples: Annotated[int, typer.Option(help="Use at most this many safety examples.")] = R.max_examples,
    max_length: Annotated[int, typer.Option(help="Token limit per example.")] = R.max_length,
    seed: Annotated[int, typer.Option(help="Seed for sampling and batch order.")] = R.seed,
    save_mask: Annotated[bool, typer.Option(help="Also write mask.safetensors (1 = kept task vector).")] = False,
):
    """SOMF safety realignment (arXiv:2405.09055): aligned + safety-masked task vectors -> a loadable model."""
    from ..realign import RealignConfig, realign

    for p in [aligned, *finetuned]:
        if not p.exists():
            fail(f"{p}: no such model directory")
    try:
        cfg = RealignConfig(
            method=mask_method.value, mask_ratio=None if mask_ratio == -1 else mask_ratio, scaling=scaling, rescale=rescale,
            include=include, steps=steps, lr=lr, batch_size=batch_size, max_examples=max_examples, max_length=max_length,
            seed=seed,
        )  # fmt: skip
        with sigterm_interrupts("nothing was written (the output is written only at the end)"):
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
