"""The command line as a package and its settings: typed run-config sections (unknown keys and wrong types fail as
one line), -E engine options end to end, CLI defaults read from the config dataclasses, and a start-up that imports
only what the command needs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tracesafe.engines.config import EngineConfig, vllm_engine_args
from tracesafe.generate import ClientConfig, GenerateConfig, SamplingConfig, Selection
from tracesafe.generate.core import manifest_path
from tracesafe.runner import load_config, plan

REPO = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "tracesafe.cli"]
TRACES = "[run]\ntraces=['t.jsonl']\n"
MODELS = "[run]\nsuites=['sst']\n[[models]]\nmodel='org/A'\n"


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "t.jsonl").write_text("")
    p = tmp_path / "cfg.toml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("text, message", [
    (TRACES + "[report]\ntitel='x'\n", r"cfg\.toml: \[report\] unknown key 'titel' \(known: default_cards, judge_cards, title\)"),
    (TRACES + "nmae='x'\n", r"cfg\.toml: \[run\] unknown key 'nmae'"),
    (MODELS.replace("[[models]]", "[generate]\ntemprature=0.5\n[[models]]"), r"cfg\.toml: \[generate\] unknown key 'temprature'"),
    (MODELS + "sampels=2\n", r"cfg\.toml: \[\[models\]\] unknown key 'sampels'"),
    (TRACES + "[judge]\njudges=['offline']\nthreshhold=0.5\n", r"cfg\.toml: \[judge\] unknown key 'threshhold'"),
    (TRACES + "[judge]\njudges=['offline']\n[judge.offline]\nthreshhold=0.5\n", r"cfg\.toml: \[judge\.offline\] unknown key 'threshhold'"),
    (TRACES + "limit='ten'\n", r"cfg\.toml: \[run\] limit = 'ten': expected int"),
    (TRACES + "[report]\ndefault_cards='no'\n", r"cfg\.toml: \[report\] default_cards = 'no': expected bool"),
    (MODELS + "engine_options=3\n", r"cfg\.toml: \[\[models\]\] engine_options = 3: expected dict"),
    # values a type check lets through, caught before anything runs (and by --dry-run), not after generation
    (TRACES + "[judge]\njudges=['offline','nosuchjudge']\n", r"cfg\.toml: \[judge\] unknown judge\(s\) \['nosuchjudge'\]; known: .*offline"),
    (TRACES + "[judge]\njudges=[]\n", r"cfg\.toml: \[judge\] name at least one judge; known: .*offline"),
    (TRACES + "[judge]\nsegments=['thinkin']\n", r"cfg\.toml: \[judge\] segments must be among thinking, answer, full; got \['thinkin'\]"),
    (TRACES + "[report]\njudge_cards=['nocard.json']\n", r"cfg\.toml: \[report\] judge_cards: nocard\.json: no such file"),
    (TRACES + "limit=-1\n", r"cfg\.toml: \[run\] limit = -1: must be >= 0"),
    (MODELS + "backend='bogus'\n", r"cfg\.toml: model 'A': backend: unknown engine 'bogus'; known: .*hf"),
    (MODELS + "max_tokens=0\n", r"cfg\.toml: model 'A': max_tokens must be >= 1"),
    (MODELS + "top_p=2.0\n", r"cfg\.toml: model 'A': top_p must be in \(0, 1\]"),
    (MODELS + "dtype='float8'\n", r"cfg\.toml: model 'A': dtype must be one of auto"),
    (MODELS + "batch_size=0\n", r"cfg\.toml: model 'A': batch_size must be >= 1"),
])  # fmt: skip
def test_unknown_keys_and_wrong_types_fail_naming_file_and_section(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        load_config(write(tmp_path, text))


def test_set_reaches_a_models_table_by_index_and_says_what_it_cannot_set(tmp_path):
    cfg = write(tmp_path, MODELS)
    assert load_config(cfg, {"models.0.samples": 3}).models[0]["samples"] == 3
    for key, message in (("models.samples", r"--set models\.samples: models is an array of 1 tables; 'samples' is not one"),
                         ("models.1.samples", r"'1' is not one of its indexes \(0 to 0\)"),
                         ("run.name.x", r"--set run\.name\.x: run\.name is a value, not a table")):  # fmt: skip
        with pytest.raises(ValueError, match=message):
            load_config(cfg, {"run.name": "n", key: 1} if key == "run.name.x" else {key: 1})


def test_known_keys_load_into_typed_sections(tmp_path):
    cfg = load_config(write(tmp_path, TRACES + "[judge]\njudges=['offline','refusal']\nthreshold=0.4\nbatch_size=8\n"
                                      "[judge.refusal]\nhead=100\n[report]\ntitle='T'\ndefault_cards=false\n"))
    assert cfg.name == "cfg" and cfg.run.traces == ["t.jsonl"]
    assert cfg.judge.judges == ["offline", "refusal"] and cfg.judge.segments == ["thinking", "answer"]
    assert cfg.judge.options == {"threshold": 0.4, "batch_size": 8, "refusal": {"head": 100}}
    assert cfg.report.title == "T" and cfg.report.default_cards is False
    # a judge that takes any option (llama-guard: **kwargs) lets any key through, as run_judges does
    assert load_config(write(tmp_path, TRACES + "[judge]\njudges=['llama-guard']\nanything=1\n")).judge.options == {"anything": 1}


def test_cli_config_error_is_one_line_exit_2(tmp_path):
    cfg = write(tmp_path, TRACES + "[report]\ntitel='x'\n")
    r = subprocess.run([*CLI, "run", str(cfg), "--dry-run"], capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [f"error: {cfg}: [report] unknown key 'titel' (known: default_cards, judge_cards, title)"]


def test_engine_options_from_run_config_reach_the_engine_arguments(tmp_path):
    cfg = load_config(write(tmp_path, MODELS.replace("[[models]]", "[generate]\nengine_options={max_num_seqs=4}\n[[models]]")
                            + "engine_options={kv_cache_dtype='fp8', enforce_eager=true}\n"))
    assert plan(cfg)[2].startswith("  generate A (org/A, backend vllm)")
    from tracesafe.runconfig import generate_config

    gcfg = generate_config(cfg, cfg.models[0])  # a model's table replaces [generate]'s, as every key does
    assert gcfg.engine.options == {"kv_cache_dtype": "fp8", "enforce_eager": True}
    args = vllm_engine_args(gcfg.engine, on_cpu=True, sampled=True)
    assert args["kv_cache_dtype"] == "fp8" and args["enforce_eager"] is True  # merged last: an option wins


def test_engine_args_builder_merges_options_last():
    base = vllm_engine_args(EngineConfig(), on_cpu=True, sampled=True)
    assert base["enable_chunked_prefill"] is False and "max_num_seqs" not in base
    args = vllm_engine_args(EngineConfig(options={"max_num_seqs": 8, "enable_chunked_prefill": True}), on_cpu=True, sampled=True)
    assert args == {**base, "max_num_seqs": 8, "enable_chunked_prefill": True}
    assert GenerateConfig.from_flat(model="m", engine_options={"a": 1}).engine.options == {"a": 1}
    hash(EngineConfig(options={"a": 1}))  # still hashable (options are not part of the hash)


def test_generate_records_engine_options_in_the_manifest(tiny_r1, tmp_path):
    out = tmp_path / "t.jsonl"
    r = subprocess.run([*CLI, "generate", "--model", str(tiny_r1), "--backend", "hf", "--limit", "1", "--max-tokens", "4",
                        "-E", "attn_implementation=eager", "-E", "use_cache=true", "-o", str(out)],
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    config = json.loads(manifest_path(out).read_text())["config"]
    assert config["engine_options"] == {"attn_implementation": "eager", "use_cache": True}
    assert config["temperature"] == SamplingConfig.temperature and config["top_p"] == SamplingConfig.top_p  # defaults from the config
    r = subprocess.run([*CLI, "generate", "--model", str(tiny_r1), "-E", "nokey", "-o", str(out)], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.strip() == "error: -E 'nokey': expected KEY=VALUE, e.g. max_num_seqs=64"
    # An option the engine's library does not take (a vLLM argument on transformers): one line, exit 2.
    r = subprocess.run([*CLI, "generate", "--model", str(tiny_r1), "--backend", "hf", "--limit", "1", "--max-tokens", "4",
                        "-E", "max_num_seqs=4", "-o", str(tmp_path / "w.jsonl")], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert r.stderr.strip().splitlines()[-1].startswith("error: the hf engine does not take the engine option -E max_num_seqs")
    # Engine options with judges that run no engine: one line naming -E, exit 2.
    (tmp_path / "t.jsonl").write_text('{"id": "a", "prompt": "p", "raw": "<think>x</think>y"}\n')
    r = subprocess.run([*CLI, "judge", str(tmp_path / "t.jsonl"), "-j", "refusal", "-E", "max_num_seqs=4", "-o", str(tmp_path / "v.jsonl")],
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 2 and r.stderr.strip() == "error: -E (engine options): not accepted by any of the judges ['refusal']"


def test_split_starts_without_the_heavy_modules(tmp_path):
    """`tracesafe split` imports neither the other commands' modules nor pydantic (typer's value coercion),
    pandas, rich or the importers: start-up is most of what a split of a small file costs."""
    src = tmp_path / "t.jsonl"
    src.write_text('{"raw": "<think>a</think>b"}\n')
    code = ("import sys, runpy; sys.argv = ['tracesafe', 'split', sys.argv[1], '-o', sys.argv[2]]\n"
            "try:\n runpy.run_module('tracesafe.cli', run_name='__main__')\n"
            "except SystemExit:\n pass\n"
            "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('pydantic', 'pandas', 'rich', 'numpy', 'pyarrow') or m.startswith(('tracesafe.cli.', 'tracesafe.importers')))))")  # fmt: skip
    r = subprocess.run([sys.executable, "-c", code, str(src), str(tmp_path / "o.jsonl")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["tracesafe.cli._app", "tracesafe.cli._options", "tracesafe.cli.split"]
    assert json.loads((tmp_path / "o.jsonl").read_text())["answer"] == "b"


def test_bad_choice_keeps_typers_message(tmp_path):
    src = tmp_path / "t.jsonl"
    src.write_text("")
    r = subprocess.run([*CLI, "split", str(src), "-o", str(tmp_path / "o.jsonl"), "--on-bad-line", "bogus"], capture_output=True, text=True,
                       env={**os.environ, "COLUMNS": "200"})
    assert r.returncode == 2 and "'bogus' is not one of 'error', 'skip'" in r.stderr


@pytest.mark.parametrize("entry", [["-m", "tracesafe"], ["-m", "tracesafe.cli"]])
def test_entry_points_list_every_command_in_pipeline_order(entry):
    r = subprocess.run([sys.executable, *entry, "--help"], capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    assert r.returncode == 0, r.stderr
    from tracesafe.cli import COMMANDS

    found = [c for line in r.stdout.splitlines() for c in COMMANDS if line.startswith(f"│ {c} ")]
    assert found == list(COMMANDS)


def test_cli_defaults_come_from_the_config_dataclasses():
    from tracesafe.cli import generate as gen_cli
    from tracesafe.cli.judge import J
    from tracesafe.runconfig import JudgeSection

    defaults = {p.name: p.default for p in __import__("typer").main.get_command(gen_cli.app).params}
    for name in ("samples", "temperature", "top_p", "top_k", "seed", "think_budget", "think_retries", "dtype", "limit",
                 "batch_size", "concurrency", "request_timeout", "max_retries"):  # fmt: skip
        assert defaults[name] == GenerateConfig.flat_defaults()[name], name
    assert (defaults["temperature"], defaults["samples"], defaults["dtype"], defaults["batch_size"]) == (
        SamplingConfig.temperature, Selection.samples, EngineConfig.dtype, ClientConfig.batch_size)  # fmt: skip
    assert J.judges == JudgeSection().judges


@pytest.mark.engine
def test_engine_option_vllm_does_not_know_is_refused_by_vllm(tiny_r1, tmp_path):
    """-E reaches vLLM's engine arguments: one vLLM does not know is refused (a real one running and being recorded is
    checked by test_generate.py::test_vllm_offline_matches_hf, which passes -E max_num_seqs=2)."""
    cmd = [*CLI, "generate", "--model", str(tiny_r1), "--backend", "vllm", "--limit", "1", "--max-tokens", "4", "--temperature", "0",
           "--enforce-eager", "--dtype", "float32", "-o", str(tmp_path / "w.jsonl"), "-E", "not_an_engine_argument=1"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=400)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert "error: the vllm engine does not take the engine option -E not_an_engine_argument" in r.stderr


def test_generate_refuses_bad_values_in_one_line_before_loading_a_model(tmp_path):
    suite = tmp_path / "p.jsonl"
    suite.write_text('{"prompt": "How do I bake bread?"}\n')
    for args, message in ((["--max-tokens", "0"], "error: max_tokens must be >= 1"), (["--limit", "-1"], "error: limit must be >= 0"),
                          (["--top-p", "2"], "error: top_p must be in (0, 1]"), (["--batch-size", "0"], "error: batch_size must be >= 1"),
                          (["--dtype", "float8"], "error: dtype must be one of auto"),
                          (["--chat-template-kwargs", "{bad"], "error: --chat-template-kwargs '{bad': not JSON"),
                          (["--chat-template-kwargs", "[1]"], "error: chat_template_kwargs must be a JSON object")):  # fmt: skip
        r = subprocess.run([*CLI, "generate", "--model", str(tmp_path / "no-such-model"), "--backend", "hf", "--suite", str(suite),
                            "-o", str(tmp_path / "o.jsonl"), *args], capture_output=True, text=True)  # fmt: skip
        assert r.returncode == 2 and len(r.stderr.splitlines()) == 1 and r.stderr.startswith(message), (args, r.stderr)
    assert not (tmp_path / "o.jsonl").exists()


def test_a_config_that_is_not_text_is_named(tmp_path):
    cfg = tmp_path / "cfg.toml"
    cfg.write_bytes(b"[run]\nname = '\xff'\n")
    with pytest.raises(ValueError, match=r"cfg\.toml: not a TOML run config \(not UTF-8 text: byte 0xff at offset 14\)"):
        load_config(cfg)
