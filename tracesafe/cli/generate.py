"""`tracesafe generate`. Every option is a GenerateConfig flat key of the same name, and its default is read
from the concern that declares it (tracesafe.generate.config): the setting is declared there once, and the
command passes its values on by name."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ..generate import THINKING_MODES, GenerateConfig
from ._app import PIPELINE, Typer, fail, sigterm_interrupts
from ._options import EngineOptionOpt, ReasoningFormatOpt, engine_options, plain

app = Typer()

D: dict[str, Any] = GenerateConfig.flat_defaults()


class Backend(str, Enum):
    vllm = "vllm"
    openai = "openai"
    hf = "hf"
    ray = "ray"


ThinkingMode = Enum("ThinkingMode", {m: m for m in THINKING_MODES}, type=str)


@app.command("generate", rich_help_panel=PIPELINE)
def generate_cmd(
    ctx: typer.Context,
    model: Annotated[str, typer.Option(help="Model path or hub name (a local path or the HF cache: nothing is downloaded by tracesafe itself).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Trace JSONL; appended to, so a rerun resumes.")],
    suite: Annotated[list[str], typer.Option(help="Built-in suite (sst, xstest) or a CSV/JSONL/Parquet prompt file; repeatable.")] = ["sst"],
    backend: Annotated[Backend, typer.Option(help="vllm (offline LLM), openai (any OpenAI-compatible server), hf (transformers), ray (Ray Data + vLLM, many nodes).")] = Backend(D["backend"]),
    samples: Annotated[int, typer.Option(help="Samples per prompt (each with its own seed).")] = D["samples"],
    max_tokens: Annotated[Optional[int], typer.Option(help="Generated-token limit (default: the model's context).")] = D["max_tokens"],
    temperature: Annotated[float, typer.Option(help="DeepSeek-R1's recommended value by default; 0 = greedy.")] = D["temperature"],
    top_p: Annotated[float, typer.Option(help="DeepSeek-R1's recommended value by default.")] = D["top_p"],
    top_k: Annotated[int, typer.Option(help="-1: off.")] = D["top_k"],
    seed: Annotated[int, typer.Option(help="Base seed; each sample's seed derives from it, the prompt id and the sample index.")] = D["seed"],
    system_prompt: Annotated[Optional[str], typer.Option(help="System prompt (none by default, as DeepSeek recommends for R1).")] = D["system_prompt"],
    chat_template_kwargs: Annotated[Optional[str], typer.Option(help='JSON passed to the chat template, e.g. \'{"enable_thinking": true}\' for Qwen3.')] = None,
    thinking_mode: Annotated[ThinkingMode, typer.Option(help="SafeChain decoding: zerothink/lessthink prefill a closed thought; morethink re-opens it with 'Wait' or 'Let me think again' (drawn from the sample seed).")] = ThinkingMode(D["thinking_mode"]),
    think_budget: Annotated[int, typer.Option(help="morethink: thinking-token budget (SafeChain's default); the answer gets --max-tokens minus this.")] = D["think_budget"],
    think_retries: Annotated[int, typer.Option(help="morethink: at most this many continuations (SafeChain's default).")] = D["think_retries"],
    tensor_parallel_size: Annotated[int, typer.Option(help="vLLM tensor parallelism (GPUs per model replica).")] = D["tensor_parallel_size"],
    pipeline_parallel_size: Annotated[int, typer.Option(help="vLLM pipeline parallelism.")] = D["pipeline_parallel_size"],
    data_parallel_size: Annotated[int, typer.Option(help="Data-parallel model replicas (vLLM; with --backend ray: Ray workers across nodes).")] = D["data_parallel_size"],
    dtype: Annotated[str, typer.Option(help="auto, bfloat16, float16, float32.")] = D["dtype"],
    max_model_len: Annotated[Optional[int], typer.Option(help="Context length to allocate (vLLM) or assume (hf).")] = D["max_model_len"],
    gpu_memory_utilization: Annotated[Optional[float], typer.Option(help="vLLM: share of GPU memory to reserve (on CPU: of RAM, for the KV cache). Default 0.9 on GPU, 0.2 on CPU.")] = D["gpu_memory_utilization"],
    enforce_eager: Annotated[bool, typer.Option(help="vLLM: no graph capture or compilation (faster start; CPU).")] = D["enforce_eager"],
    engine_option: EngineOptionOpt = [],
    shard: Annotated[Optional[str], typer.Option(help="I/N: only this shard of the prompts (deterministic by prompt id), for SLURM arrays.")] = D["shard"],
    limit: Annotated[int, typer.Option(help="Only the first N prompts (0: all).")] = D["limit"],
    batch_size: Annotated[int, typer.Option(help="hf backend: sequences per batch.")] = D["batch_size"],
    api_base: Annotated[Optional[str], typer.Option(help="openai backend: base URL, e.g. http://127.0.0.1:8000/v1.")] = D["api_base"],
    api_key_env: Annotated[Optional[str], typer.Option(help="openai backend: NAME of the env var holding the API key (the key is never written).")] = D["api_key_env"],
    concurrency: Annotated[int, typer.Option(help="openai backend: requests in flight.")] = D["concurrency"],
    request_timeout: Annotated[float, typer.Option(help="openai backend: seconds one attempt may take in all, connect to last byte (a trickling server is cut off).")] = D["request_timeout"],
    max_retries: Annotated[int, typer.Option(help="openai backend: retries of a request after a timeout, connection error, 408/409/429 or 5xx (Retry-After honoured).")] = D["max_retries"],
    revision: Annotated[Optional[str], typer.Option(help="Model revision to load and record.")] = D["revision"],
    trust_remote_code: Annotated[bool, typer.Option(help="Run the model repository's own code (off by default).")] = D["trust_remote_code"],
    reasoning_format: ReasoningFormatOpt = D["reasoning_format"],
):
    """Generate full reasoning traces (resumable: existing trace ids are skipped; split on the fly)."""
    import json

    from ..generate import generate
    from ..store import refuse_input_as_output
    from ..suites import load_suite

    fields = {k: plain(v) for k, v in ctx.params.items() if k in GenerateConfig.flat_fields()}
    try:
        with sigterm_interrupts(f"the traces finished so far are in {output}; rerun the same command to resume"):
            refuse_input_as_output(output, [s for s in suite if Path(s).exists()])
            try:
                fields["chat_template_kwargs"] = json.loads(chat_template_kwargs) if chat_template_kwargs else {}
            except ValueError as e:
                raise ValueError(f"--chat-template-kwargs {chat_template_kwargs!r}: not JSON ({e})") from None
            cfg = GenerateConfig.from_flat(**fields, engine_options=engine_options(engine_option))
            prompts = [p for name in suite for p in load_suite(name)]
            stats = generate(cfg, prompts, output)
    except ValueError as e:
        fail(str(e))
    typer.echo(", ".join(f"{k} {v}" for k, v in stats.items()) + f" -> {output}", err=True)
    if stats.get("failed"):
        typer.echo(f"incomplete: {stats['failed']} requests failed; rerun the same command to retry them (one the "
                   "server refused, HTTP 4xx, is likely refused again)", err=True)  # fmt: skip
        raise typer.Exit(1)
