"""Faults between tracesafe and an OpenAI-compatible server, against a bounded loopback server (127.0.0.1,
a fixed number of requests, a fixed lifetime): malformed 200 replies, trickling bytes, errors that echo
the Authorization header, Ctrl-C/SIGTERM mid-run, bad URLs, a missing SDK, and secrets in URLs and
bodies. Each good reply must be kept, each bad one counted and retried on rerun, no secret written."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tracesafe.engines.openai_client import redact
from tracesafe.store import read_jsonl

CLI = [sys.executable, "-m", "tracesafe.cli"]
KEY = "sk-test-SECRETKEY1234567"
URL_PASSWORD = "urlpass-9876"
BASIC = base64.b64encode(f"user:{URL_PASSWORD}".encode()).decode()
SECRETS = (KEY, URL_PASSWORD, BASIC)
BAD_KINDS = ("list-body", "null-choice", "list-content", "echo-auth", "trickle")
# Replies that are JSON but no text to keep, an error that echoes the prompt, and odd good replies.
ODD_KINDS = ("lone-surrogate", "huge-usage", "echo-prompt", "structured-refusal", "no-usage")


class Loopback:
    """A chat/completions server on 127.0.0.1 that answers by a word in the prompt: by default a reply,
    ``list-body`` ``[1,2,3]``, ``null-choice`` ``choices: [null]``, ``list-content`` a list as content,
    ``echo-auth`` a 401 quoting the Authorization header, ``trickle`` a byte every 0.2 s. With ``healed``
    set every prompt gets a good reply. Serves at most ``max_requests`` and stops after ``lifetime`` s."""

    def __init__(self, *, delay: float = 0.0, max_requests: int = 200, lifetime: float = 120.0):
        self.delay, self.max_requests, self.healed = delay, max_requests, False
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer._lock:
                    outer.requests.append({"auth": self.headers.get("Authorization"), "path": self.path, **body})
                    over = len(outer.requests) > outer.max_requests
                if over:
                    return self._send(503, b'{"error": "request budget of the test server spent"}')
                text = body["messages"][-1]["content"] if "messages" in body else body["prompt"]
                kind = next((k for k in BAD_KINDS + ODD_KINDS if k in text and not outer.healed), "good")
                time.sleep(outer.delay)
                if kind == "trickle":
                    self.send_response(200)
                    self.send_header("Content-Length", "100")
                    self.end_headers()
                    try:
                        for _ in range(25):  # 5 s at most
                            self.wfile.write(b" ")
                            self.wfile.flush()
                            time.sleep(0.2)
                    except OSError:  # the client gave up, as it should
                        pass
                    return
                if kind == "echo-auth":
                    return self._send(401, json.dumps({"error": f"invalid credentials: {self.headers.get('Authorization')}"}).encode())
                if kind == "echo-prompt":  # as vLLM's validation errors quote the request
                    return self._send(400, json.dumps({"error": {"message": f"bad request: input {body['messages']}"}}).encode())
                message = {"role": "assistant", "content": f"Answer to {text}.", "reasoning_content": "Thought."}
                reply = {"choices": [{"index": 0, "finish_reason": "stop", "message": message}],
                         "usage": {"prompt_tokens": 5, "completion_tokens": 7}}  # fmt: skip
                if kind == "list-body":
                    return self._send(200, b"[1,2,3]")
                if kind == "null-choice":
                    reply["choices"] = [None]
                if kind == "list-content":
                    message["content"] = [{"type": "text", "text": "x"}]
                if kind == "lone-surrogate":
                    message["content"] = "half an emoji: \ud83d"  # json.dumps writes the escape: valid JSON
                if kind == "huge-usage":
                    reply["usage"]["completion_tokens"] = 2**70
                if kind == "structured-refusal":
                    message.update(content=None, refusal="I can't help with that.")
                if kind == "no-usage":
                    del reply["usage"]
                if "prompt" in body:  # /completions
                    reply["choices"] = [{"index": 0, "finish_reason": "stop", "text": "1.b 0"}]
                self._send(200, json.dumps(reply).encode())

            def _send(self, status: int, data: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_port
        self._timer = threading.Timer(lifetime, self.server.shutdown)

    def __enter__(self) -> "Loopback":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._timer.cancel()
        self.server.shutdown()
        self.server.server_close()


def write_prompts(path: Path, texts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"id": f"p{i:02d}", "prompt": t}) + "\n" for i, t in enumerate(texts)))
    return path


def assert_no_secret(tmp_path: Path, *texts: str) -> None:
    for f in [p for p in tmp_path.rglob("*") if p.is_file()]:
        content = f.read_text(errors="replace")
        for s in SECRETS:
            assert s not in content, f"{s} written to {f}"
    for t in texts:
        for s in SECRETS:
            assert s not in t


def generate_cmd(port: int, prompts: Path, out: Path, *extra: str) -> list[str]:
    return [*CLI, "generate", "--backend", "openai", "--model", "test-model", "--suite", str(prompts), "-o", str(out),
            "--api-base", f"http://user:{URL_PASSWORD}@127.0.0.1:{port}/v1", "--api-key-env", "TS_KEY", *extra]  # fmt: skip


ENV = {**os.environ, "TS_KEY": KEY}


def test_bad_replies_are_failed_requests_good_ones_kept_and_a_rerun_retries(tmp_path):
    texts = [f"good {i}" for i in range(15)] + [f"{k} prompt" for k in BAD_KINDS]
    prompts, out = write_prompts(tmp_path / "prompts.jsonl", texts), tmp_path / "traces.jsonl"
    cmd = generate_cmd(0, prompts, out, "--request-timeout", "1", "--max-retries", "1", "--concurrency", "4")
    with Loopback(max_requests=40, lifetime=90) as srv:
        cmd[cmd.index("--api-base") + 1] = f"http://user:{URL_PASSWORD}@127.0.0.1:{srv.port}/v1"
        t0 = time.monotonic()
        r = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=120)
        took = time.monotonic() - t0
        assert r.returncode == 1, r.stderr[-3000:]
        assert "Traceback" not in r.stderr and "failed 5" in r.stderr and "rerun" in r.stderr
        recs = list(read_jsonl(out))
        assert sorted(x["prompt"] for x in recs) == sorted(texts[:15])  # every good reply kept
        assert all(x["answer"] == f"Answer to {x['prompt']}." for x in recs)
        for kind in BAD_KINDS:  # each bad reply named by its trace, none with the prompt's text
            assert sum(kind in line for line in r.stderr.splitlines()) == 0
        assert r.stderr.count("warning: trace") == 5
        assert "malformed reply" in r.stderr and "HTTP 401" in r.stderr and "timed out: 1 s per attempt (after 2 attempts)" in r.stderr
        assert took < 60  # the trickle cut off after 1 s per attempt, not held for its 5 s
        # 4xx and malformed replies are not retried in the run; the trickle is (2 attempts).
        sent = [q["messages"][-1]["content"].split()[0] for q in srv.requests]
        assert sent.count("good") == 15 and sent.count("trickle") == 2 and len(sent) == 21
        first_stderr = r.stderr

        srv.healed = True  # the rerun sends only the 5 failed requests
        r = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=120)
        assert r.returncode == 0, r.stderr[-3000:]
        assert "already_done 15" in r.stderr and "generated 5" in r.stderr and "failed 0" in r.stderr
        assert len(srv.requests) == 26
    recs = list(read_jsonl(out))
    assert len(recs) == 20 and len({x["id"] for x in recs}) == 20
    manifest = json.loads((tmp_path / "traces.manifest.json").read_text())
    assert manifest["config"]["api_base"] == f"http://***@127.0.0.1:{srv.port}/v1"
    assert recs[0]["engine"]["api_base"] == manifest["config"]["api_base"]
    assert_no_secret(tmp_path, first_stderr, r.stderr)


def test_replies_that_cannot_be_kept_fail_their_trace_and_an_echoed_prompt_stays_out_of_the_log(tmp_path):
    """A lone surrogate escape or a token count beyond int64 is valid JSON that no trace file can hold: the run
    crashed with a traceback on every rerun. A server error quoting the request put the prompt on stderr."""
    secret_prompt = "echo-prompt: a prompt text that must never reach the log"
    texts = ["good 0", "lone-surrogate prompt", "huge-usage prompt", secret_prompt, "structured-refusal prompt", "no-usage prompt"]
    prompts, out = write_prompts(tmp_path / "prompts.jsonl", texts), tmp_path / "traces.jsonl"
    with Loopback(max_requests=20, lifetime=60) as srv:
        r = subprocess.run(generate_cmd(srv.port, prompts, out, "--max-retries", "0", "--concurrency", "1"),
                           capture_output=True, text=True, env=ENV, timeout=120)  # fmt: skip
    assert r.returncode == 1 and "Traceback" not in r.stderr and "failed 3" in r.stderr, r.stderr[-3000:]
    assert "not valid Unicode (a lone surrogate)" in r.stderr and "usage is not an object of token counts" in r.stderr
    assert "HTTP 400: bad request: input" in r.stderr and "never reach the log" not in r.stderr
    assert "likely refused again" in r.stderr
    recs = {x["prompt"]: x for x in read_jsonl(out)}
    assert set(recs) == {"good 0", "structured-refusal prompt", "no-usage prompt"}
    assert recs["structured-refusal prompt"]["answer"] == "I can't help with that."
    assert recs["no-usage prompt"]["n_tokens"]["completion"] is None  # not 0: the server did not say
    assert recs["good 0"]["n_tokens"]["completion"] == 7


@pytest.mark.parametrize("args, message", [
    (["--temperature", "nan"], "temperature must be a finite number >= 0, not nan"),
    (["--request-timeout", "inf"], "request_timeout must be > 0 and max_retries >= 0, not inf"),
    (["--api-base", "http://127.0.0.1:9/v1?token=abcdefgh"], "a query string or fragment cannot be sent"),
])  # fmt: skip
def test_settings_no_request_could_use_are_refused_before_sending(args, message, tmp_path):
    prompts = write_prompts(tmp_path / "prompts.jsonl", ["good 0"])
    cmd = generate_cmd(9, prompts, tmp_path / "t.jsonl")
    if args[0] == "--api-base":
        cmd[cmd.index("--api-base") + 1] = args[1]
        args = []
    r = subprocess.run([*cmd, *args], capture_output=True, text=True, env=ENV, timeout=60)
    assert r.returncode == 2 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "abcdefgh" not in r.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_stops_sending_at_once_and_keeps_what_finished(tmp_path, sig):
    n, concurrency = 40, 2
    prompts = write_prompts(tmp_path / "prompts.jsonl", [f"good {i}" for i in range(n)])
    out = tmp_path / "traces.jsonl"
    with Loopback(delay=0.3, max_requests=3 * n, lifetime=90) as srv:
        cmd = generate_cmd(srv.port, prompts, out, "--concurrency", str(concurrency))
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
        deadline = time.monotonic() + 60
        while (not out.exists() or out.stat().st_size == 0) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 1, err[-3000:]
        assert "interrupted" in err and "Traceback" not in err
        kept = list(read_jsonl(out))  # every line whole
        sent_during = len(srv.requests)
        assert 1 <= len(kept) < n
        # Only requests already in flight may have been sent without being kept.
        assert sent_during <= len(kept) + 2 * concurrency
        time.sleep(0.5)
        assert len(srv.requests) == sent_during  # nothing sent after exit
        r = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=120)
        assert r.returncode == 0, r.stderr[-3000:]
        assert f"already_done {len(kept)}" in r.stderr
    recs = list(read_jsonl(out))
    assert len(recs) == n and len({x["id"] for x in recs}) == n
    assert_no_secret(tmp_path, err, r.stderr)


def test_url_without_scheme_and_missing_sdk_fail_at_once(tmp_path):
    prompts = write_prompts(tmp_path / "prompts.jsonl", ["good 0"])
    t0 = time.monotonic()
    r = subprocess.run([*CLI, "generate", "--backend", "openai", "--model", "m", "--suite", str(prompts), "-o",
                        str(tmp_path / "o.jsonl"), "--api-base", f"user:{URL_PASSWORD}@127.0.0.1:9/v1"],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert time.monotonic() - t0 < 30
    assert r.returncode == 2 and "http:// or https://" in r.stderr and "Traceback" not in r.stderr
    assert URL_PASSWORD not in r.stderr
    r = subprocess.run([*CLI, "judge", str(prompts), "-o", str(tmp_path / "v.jsonl"), "-j", "rubric",
                        "-O", "base_url=127.0.0.1:9/v1"], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 2 and "base_url" in r.stderr and "http:// or https://" in r.stderr, r.stderr
    # No openai package: the pip command that installs it, not an ImportError.
    no_sdk = "import sys; sys.modules['openai'] = None; from tracesafe.cli import main; main()"
    r = subprocess.run([sys.executable, "-c", no_sdk, "generate", "--backend", "openai", "--model", "m", "--suite",
                        str(prompts), "-o", str(tmp_path / "o.jsonl"), "--api-base", "http://127.0.0.1:9/v1"],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 2 and "pip install 'tracesafe[models]'" in r.stderr and "Traceback" not in r.stderr


def test_rubric_judge_errors_are_verdicts_and_never_hold_the_key(tmp_path, monkeypatch):
    from tracesafe.judges import run_judges

    traces = tmp_path / "traces.jsonl"
    rows = [("t-echo", "echo-auth"), ("t-list", "list-body"), ("t-null", "null-choice"), ("t-content", "list-content")]
    traces.write_text("".join(json.dumps({"id": tid, "prompt_id": tid, "prompt": f"{kind} prompt", "model": "m",
                                          "raw": "<think>x</think>an answer"}) + "\n" for tid, kind in rows))  # fmt: skip
    monkeypatch.setenv("TS_KEY", KEY)
    out = tmp_path / "verdicts.jsonl"
    with Loopback(max_requests=20, lifetime=60) as srv:
        stats = run_judges(traces, ["rubric"], ["answer"], out, judge_model="m", progress=False, api_key_env="TS_KEY",
                           base_url=f"http://127.0.0.1:{srv.port}/v1", max_retries=0, request_timeout=5)  # fmt: skip
        assert {q["auth"] for q in srv.requests} == {f"Bearer {KEY}"}  # the key was sent ...
        # With the key's variable unset no Authorization header goes out (no other key is picked up).
        monkeypatch.setenv("OPENAI_API_KEY", "sk-not-for-this-host-123")
        n = len(srv.requests)
        run_judges(traces, ["rubric"], ["answer"], tmp_path / "nokey.jsonl", judge_model="m", progress=False,
                   api_key_env="TS_UNSET_KEY", base_url=f"http://127.0.0.1:{srv.port}/v1", max_retries=0, cache_dir=None)  # fmt: skip
        assert len(srv.requests) > n and {q["auth"] for q in srv.requests[n:]} == {None}
    assert stats["verdicts"] == 4 and stats["error"] == 4
    vs = {v["trace_id"]: v for v in read_jsonl(out)}
    assert vs["t-echo"]["error"].startswith("HTTP 401") and "Bearer ***" in vs["t-echo"]["raw_output"]
    for tid in ("t-list", "t-null", "t-content"):
        assert vs[tid]["status"] == "error" and vs[tid]["error"].startswith("malformed reply"), vs[tid]
    assert_no_secret(tmp_path)  # ... and written nowhere: verdicts, cache


def test_an_echoed_request_is_cut_from_the_error_message_wherever_it_starts():
    from tracesafe.engines.openai_client import _echo_cut

    text = "Explain step by step how to do the forbidden thing; it's for a novel, include every quantity"
    chat, completion = {"messages": [{"role": "user", "content": text}]}, {"prompt": f"<|User|>{text}<|Assistant|><think>"}
    for message, body in ((f"prompt too long: {text} (2048 tokens)", chat),  # an apostrophe inside
                          (f"could not tokenize: ...{text[10:70]}", chat),  # an echo from the middle
                          (f"bad input {text[5:60]}", completion)):  # a /completions prompt, template around it
        cut = _echo_cut(message, body)
        assert "…" in cut and not any(text[i : i + 16] in cut for i in range(len(text) - 15)), cut
    limit = "This model's maximum context length is 1024 tokens. However, you requested 1100 tokens."
    assert _echo_cut(limit, chat) == limit  # the server's own words stay


def test_redact_urls_and_bodies():
    assert redact("http://u:p4ss@h:1/v1?api_key=abc&x=1&token=zz") == "http://***@h:1/v1?api_key=***&x=1&token=***"
    assert redact('{"auth": "Bearer abc.def-123"}') == '{"auth": "Bearer ***"}'
    assert redact("key sk-proj-AbC_123456 and my-own-key-value", ["my-own-key-value"]) == "key sk-*** and ***"
    assert redact("https://example.org/v1") == "https://example.org/v1"


def test_run_config_warns_about_key_and_remote_code_before_sending(tmp_path):
    prompts = write_prompts(tmp_path / "prompts.jsonl", ["good 0"])
    cfg = tmp_path / "run.toml"
    cfg.write_text(f'[run]\nsuites = ["{prompts}"]\n[generate]\nbackend = "openai"\napi_key_env = "TS_KEY"\n'
                   f'api_base = "http://user:{URL_PASSWORD}@127.0.0.1:0/v1"\ntrust_remote_code = true\n'
                   f'[[models]]\nmodel = "m"\n')  # fmt: skip
    r = subprocess.run([*CLI, "run", str(cfg), "--dry-run"], capture_output=True, text=True, env=ENV, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "TS_KEY" in r.stderr and "trust_remote_code" in r.stderr and URL_PASSWORD not in r.stdout + r.stderr
    with Loopback(max_requests=5, lifetime=60) as srv:
        cfg.write_text(cfg.read_text().replace("127.0.0.1:0", f"127.0.0.1:{srv.port}"))
        r = subprocess.run([*CLI, "run", str(cfg), "-o", str(tmp_path / "run")], capture_output=True, text=True, env=ENV,
                           timeout=120)  # fmt: skip
        assert len(srv.requests) == 1
    warning = r.stderr.index("TS_KEY")
    assert warning < r.stderr.index("generate m")  # named before anything was sent
    assert_no_secret(tmp_path / "run", r.stdout, r.stderr)  # the run directory: manifest, config copy, traces


def test_missing_sdk_fails_the_rubric_judge_before_judging(tmp_path):
    traces = tmp_path / "t.jsonl"
    traces.write_text(json.dumps({"id": "t", "prompt": "p", "raw": "<think>x</think>y"}) + "\n")
    no_sdk = "import sys; sys.modules['openai'] = None; from tracesafe.cli import main; main()"
    r = subprocess.run([sys.executable, "-c", no_sdk, "judge", str(traces), "-o", str(tmp_path / "v.jsonl"), "-j", "rubric",
                        "-O", "base_url=http://127.0.0.1:9/v1"], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 2 and "pip install 'tracesafe[models]'" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "v.jsonl").exists() or not (tmp_path / "v.jsonl").read_text()


def test_run_with_failed_requests_exits_1_and_a_rerun_completes_it(tmp_path):
    prompts = write_prompts(tmp_path / "prompts.jsonl", ["good 0", "good 1", "list-body 2"])
    cfg = tmp_path / "run.toml"
    with Loopback(max_requests=10, lifetime=90) as srv:
        cfg.write_text(f'[run]\nsuites = ["{prompts}"]\n[generate]\nbackend = "openai"\nmax_tokens = 16\n'
                       f'api_base = "http://127.0.0.1:{srv.port}/v1"\n[[models]]\nmodel = "m"\n')  # fmt: skip
        cmd = [*CLI, "run", str(cfg), "-o", str(tmp_path / "run")]
        r = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=120)
        assert r.returncode == 1 and "incomplete" in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]
        manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
        assert manifest["incomplete"] == {"m": 1} and (tmp_path / "run" / "report" / "report.html").exists()
        # The report says so first: the failed prompt is in no rate (a filter's refusals would bias them).
        report = (tmp_path / "run" / "report" / "report.md").read_text()
        assert "**Generation incomplete:** m: 1 failed requests" in report.split("## ")[0]
        srv.healed = True
        r = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=120)
        assert r.returncode == 0, r.stderr[-2000:]
        assert "incomplete" not in json.loads((tmp_path / "run" / "manifest.json").read_text())
        assert "Generation incomplete" not in (tmp_path / "run" / "report" / "report.md").read_text()
        assert len(srv.requests) == 4  # the rerun sent only the failed request


def test_generate_in_process_leaves_the_callers_sigterm_handler(tmp_path, monkeypatch):
    # generate makes SIGTERM stop like Ctrl-C while it runs; a caller's handler (here pytest's default) must come
    # back, or processes forked later (split's worker pool) inherit it and survive their pool's SIGTERM.
    from typer.testing import CliRunner

    from tracesafe.cli import app

    monkeypatch.setenv("TS_KEY", KEY)
    prompts, out = write_prompts(tmp_path / "p.jsonl", ["good 0"]), tmp_path / "t.jsonl"
    before = signal.getsignal(signal.SIGTERM)
    with Loopback(max_requests=4, lifetime=60) as srv:
        res = CliRunner().invoke(app, generate_cmd(srv.port, prompts, out)[len(CLI):])
    assert res.exit_code == 0, res.output
    assert signal.getsignal(signal.SIGTERM) is before
