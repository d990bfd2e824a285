"""The contract every registered judge keeps with the judge stage (garak's detector tests, one per plugin):
a JSON-serialisable config that does not change as the judge works (it is part of the cache key); chunks
that cover each text; ``judge([]) == []``; one result per item, in order; and a model output the judge's
parser rejects is a ``status="error"`` result holding the raw text, never an exception. Model judges run on
the tiny models of tests/tiny_judges.py (transformers), the rubric judge against a loopback
OpenAI-compatible server that answers in and out of the StrongREJECT format."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import tiny_judges as tj

from tracesafe.judges import BaseJudge, JudgeItem, get_judge, list_judges
from tracesafe.judges._cache import cache_key

MODEL_JUDGES = {"llama-guard": "llama", "harmbench-cls": "llama", "wildguard": "mistral"}  # -> tiny model
# What each model says to the "garbage" item (outside its published format).
GARBAGE = {"llama-guard": tj.LLAMA_GUARD["garbage"], "harmbench-cls": tj.HARMBENCH["garbage"],
           "wildguard": tj.WILDGUARD["garbage"], "rubric": tj.WILDGUARD["garbage"]}  # fmt: skip
# Judges that by default judge only a text's head, and the option that makes them cover it all.
HEAD_ONLY = {"harmbench-cls": {"clip_generation": False}}
ITEMS = {name: JudgeItem(text=response, prompt=prompt) for name, (prompt, response) in tj.ITEMS.items()}
# Inputs no judge may raise on: empty, blank, control and replacement characters, a run of emoji.
ODD_TEXTS = ["", " ", "\x00\x1b[2J\ufffd", "🙂" * 40]
LONG_TEXTS = [tj.ITEMS["harm"][1] * 8, "🙂" * 300, "word " * 400]


def _param(name: str):
    return pytest.param(name, marks=pytest.mark.engine) if name in MODEL_JUDGES else name


JUDGES = [_param(i.name) for i in list_judges()]


class RubricServer:
    """chat/completions on 127.0.0.1 answering as a grader would: the StrongREJECT rubric scored from the
    response under judgement (the tiny_judges items), garbage for the "garbage" item, ``#thescore`` for
    the harmfulness template."""

    SCORES = {"harm": "#scores\n1.a complied\n1.b 0\n2.a x\n2.b 5\n3.a y\n3.b 5\n",
              "refuse": "#scores\n1.a refused\n1.b 1\n2.a x\n2.b 1\n3.a y\n3.b 1\n"}  # fmt: skip

    def __init__(self):
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                msgs = body["messages"]
                item = next((k for k, (_, resp) in tj.ITEMS.items() if resp in msgs[-1]["content"]), "garbage")
                if len(msgs) == 1:  # the harmfulness template has no system message
                    text = "#thereason: fine\n#thescore: 4"
                else:
                    text = outer.SCORES.get(item, GARBAGE["rubric"])
                reply = {"choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
                         "usage": {"prompt_tokens": 5, "completion_tokens": 7}}  # fmt: skip
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def rubric_server():
    srv = RubricServer()
    yield srv
    srv.close()


def _options(name: str, request, rubric_server) -> dict:
    if name in MODEL_JUDGES:
        root = request.config.cache.mkdir("tracesafe-tiny-judges")
        model = tj.build(MODEL_JUDGES[name], root)
        return {"model": str(model), "backend": "hf", "dtype": "float32", "chunk_tokens": 16, "chunk_overlap": 4}
    if name == "rubric":
        return {"model": "grader", "base_url": f"http://127.0.0.1:{rubric_server.port}/v1", "max_retries": 0,
                "request_timeout": 10, "api_key_env": "TRACESAFE_TEST_NO_KEY", "chunk_chars": 64}  # fmt: skip
    info = next(i for i in list_judges() if i.name == name)
    if info.needs_model:
        pytest.skip(f"judge {name!r} needs a model this test does not know how to provide")
    return {}


@pytest.fixture(scope="module", params=JUDGES)
def made(request, rubric_server):
    """(name, options, judge instance), one judge alive at a time."""
    name = request.param
    opts = _options(name, request, rubric_server)
    judge = get_judge(name, **opts)
    yield name, opts, judge
    judge.close()


def test_declares_kind_and_grade_and_a_stable_json_config(made):
    name, opts, judge = made
    assert judge.kind in ("harm", "refusal") and judge.grade in ("standard", "screening")
    assert isinstance(judge.version, str) and judge.version
    before = judge.config()
    text = json.dumps(before, sort_keys=True, allow_nan=False)  # raises if not plain JSON
    assert json.loads(text) == before
    cache_key(name, judge.version, before, "p", "t")  # the cache key hashes it as orjson
    assert get_judge(name, **opts).config() == before  # same options, same config
    judge.judge([ITEMS["harm"]])
    assert judge.config() == before, "judging (loading a model) must not change the config: it keys the cache"


def test_chunks_cover_every_text(made):
    name, opts, judge = made
    texts = [*LONG_TEXTS, "a", " padded text \n", *ODD_TEXTS]
    if name in HEAD_ONLY:  # by default it judges a text's head, as its published pipeline (module doc) ...
        for t, spans in zip(texts, judge.chunk(texts)):
            assert len(spans) == 1 and spans[0][0] == 0 and spans[0][1] <= len(t)
        judge = get_judge(name, **opts, **HEAD_ONLY[name])  # ... and covers the text with this option
    all_spans = judge.chunk(texts)
    assert len(all_spans) == len(texts)
    for t, spans in zip(texts, all_spans):
        assert spans and spans[0][0] == 0 and spans[-1][1] == len(t), (t[:40], spans)
        for a, b in spans:
            assert 0 <= a <= b <= len(t)
        for (a0, b0), (a1, _) in zip(spans, spans[1:]):
            assert a0 < a1 <= b0, f"gap or no progress between chunks {spans}"
    if type(judge).chunk is not BaseJudge.chunk:  # a judge that chunks splits a text beyond its window
        assert len(all_spans[0]) > 1


def test_empty_batch_gives_no_results(made):
    assert made[2].judge([]) == []


def test_one_result_per_item_in_order(made):
    name, _, judge = made
    order = ["harm", "refuse", "garbage", "harm", "refuse"]
    batch = judge.judge([ITEMS[k] for k in order])
    assert len(batch) == len(order)
    alone = {k: judge.judge([ITEMS[k]])[0] for k in ITEMS}

    def reading(r):
        return r.status, r.unsafe, r.refused

    assert [reading(r) for r in batch] == [reading(alone[k]) for k in order]
    if name in MODEL_JUDGES or name == "rubric":  # outputs that tell the items apart, so order is tested
        assert reading(alone["harm"])[:2] == ("ok", True) and reading(alone["refuse"])[:2] == ("ok", False)
    if name == "refusal":
        assert alone["refuse"].refused is True and alone["harm"].refused is False


def test_garbage_output_is_an_error_with_the_raw_text(made):
    name, _, judge = made
    if name in MODEL_JUDGES or name == "rubric":
        (r,) = judge.judge([ITEMS["garbage"]])  # the model answers outside the published format
        assert r.status == "error" and r.error and r.raw_output and r.unsafe is None, r
        assert GARBAGE[name].strip() in r.raw_output
    # Odd inputs: a result each, never an exception; an error always says why.
    results = judge.judge([JudgeItem(text=t, prompt=p) for t, p in zip(ODD_TEXTS, (None, "", "p", None))])
    assert len(results) == len(ODD_TEXTS)
    for r in results:
        assert r.status in ("ok", "error") and (r.status == "ok" or r.error)
