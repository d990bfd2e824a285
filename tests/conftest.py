from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"  # the public datasets beside the checkout
needs_shared = pytest.mark.skipif(not (SHARED / "xstest").exists(),
                                  reason=f"human-labelled data not found at {SHARED} (CI has shared/ beside the checkout)")  # fmt: skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The ``longest`` tests first, the rest in collection order: with `pytest -n 2 --dist worksteal` (the README's
    command) the worker that starts one takes the longest test while the other works through the rest, and the idle
    worker steals the tail of the other's queue, so both finish together."""
    items.sort(key=lambda item: item.get_closest_marker("longest") is None)


@pytest.fixture(scope="session")
def tiny_r1(request) -> Path:
    """The tiny R1-style model (tracesafe.tinymodel), built once and cached under pytest's cache dir."""
    from tracesafe.tinymodel import build_tiny_r1

    return build_tiny_r1(Path(request.config.cache.mkdir("tracesafe-tiny-r1")))


@contextlib.contextmanager
def serve_vllm(model: Path, *extra: str, timeout: float = 300):
    """A real `vllm serve` of ``model`` on a free loopback port (CPU settings, ``extra`` server arguments);
    yields its base URL."""
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(Path(model).parent / f"server-{port}.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model), "--host", "127.0.0.1",
         "--port", str(port), "--dtype", "float32", "--gpu-memory-utilization", "0.2",
         "--enforce-eager", *extra],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "VLLM_LOGGING_LEVEL": "WARNING"},
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.time() + timeout
        while True:
            if proc.poll() is not None:
                pytest.fail(f"vLLM server exited: {Path(log.name).read_text()[-3000:]}")
            try:
                if httpx.get(base + "/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline:
                pytest.fail(f"vLLM server did not start in {timeout:g} s")
            time.sleep(2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="session")
def r1_server(tiny_r1) -> str:
    """One real `vllm serve` of the tiny R1 model with vLLM's deepseek_r1 reasoning parser (its base URL), shared by
    the engine contract and the generation tests: a start takes about 40 s on two cores."""
    with serve_vllm(tiny_r1, "--reasoning-parser", "deepseek_r1") as base:
        yield base
