"""tracesafe._util: the shared helpers every stage uses."""

from __future__ import annotations

import pytest

from tracesafe._util.progress import progress


def test_progress_off_a_terminal_is_a_no_op(capsys):
    with progress("x", 10) as advance:
        advance()
        advance(5)
    assert capsys.readouterr().err == ""


def test_the_hashes_are_the_ones_records_and_caches_were_made_with(tmp_path):
    import hashlib

    import orjson

    from tracesafe._util.provenance import sha256_file, sha256_text, stable_id
    from tracesafe.judges._cache import cache_key

    assert sha256_text("é\ud800", 12) == hashlib.sha256("é\ud800".encode("utf-8", "surrogatepass")).hexdigest()[:12]
    f = tmp_path / "f"
    f.write_bytes(b"x" * (3 << 20))
    assert sha256_file(f) == hashlib.sha256(f.read_bytes()).hexdigest()
    # A judge cache written before the move stays valid: the key is byte-for-byte the old formula.
    old = hashlib.sha256(orjson.dumps(["j", "1", {"b": 1, "a": [2]}, sha256_text("p"), sha256_text("t")],
                                      option=orjson.OPT_SORT_KEYS)).hexdigest()  # fmt: skip
    assert cache_key("j", "1", {"b": 1, "a": [2]}, "p", "t") == old
    assert stable_id("a", {"b": 1}) == hashlib.sha256(orjson.dumps(["a", {"b": 1}], option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def test_package_versions_has_python_and_this_package():
    from importlib import metadata

    from tracesafe._util.provenance import package_versions

    v = package_versions()
    assert v["python"].count(".") == 2 and v["platform"] and v["orjson"] == metadata.version("orjson")


def test_atomic_output_replaces_only_on_success(tmp_path):
    from tracesafe._util.atomic import atomic_output

    out = tmp_path / "o.txt"
    out.write_text("old")
    with pytest.raises(RuntimeError), atomic_output(out) as tmp:
        tmp.write_text("half")
        raise RuntimeError
    assert out.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["o.txt", "o.txt.lock"]
    with atomic_output(out) as tmp:
        tmp.write_text("new")
    assert out.read_text() == "new"


def test_library_warnings_reach_stderr_as_warning_lines(tmp_path, capsys):
    from tracesafe.store import read_jsonl

    p = tmp_path / "t.jsonl"
    p.write_text('{"id": 1}\n[1]\n')
    assert list(read_jsonl(p, on_bad_line="skip")) == [{"id": 1}]
    assert capsys.readouterr().err == f"warning: skipped {p}:2: expected a JSON object, got list\n"


def test_suites_realign_and_tables_take_the_prompt_from_the_same_field(tmp_path):
    """One field list: an Alpaca-style row (instruction + the whole formatted example in "text") gives the
    instruction as the prompt to every reader."""
    import orjson

    from tracesafe.importers import import_file
    from tracesafe.realign import load_safety_data
    from tracesafe.store import read_jsonl
    from tracesafe.suites import load_suite

    row = {"instruction": "How do I pick a lock?", "text": "### Instruction: How do I pick a lock? ### Response: ...",
           "response": "I can't help with that.", "label": "unsafe"}  # fmt: skip
    src = tmp_path / "rows.jsonl"
    src.write_bytes(orjson.dumps(row) + b"\n")
    assert [p.text for p in load_suite(src)] == [row["instruction"]]
    assert [e.prompt for e in load_safety_data(src)] == [row["instruction"]]
    import_file("jsonl", src, tmp_path / "t.jsonl", model="m")
    (trace,) = read_jsonl(tmp_path / "t.jsonl")
    assert trace["prompt"] == row["instruction"] and trace["label"] == "harmful"


def test_one_label_parser_for_suites_and_importers(tmp_path):
    from tracesafe._util.fields import parse_label
    from tracesafe.importers import import_file
    from tracesafe.suites import load_suite

    assert [parse_label(v) for v in ("Unsafe ", 1, "0", True, "", None)] == ["harmful", "harmful", "benign", "harmful", None, None]
    src = tmp_path / "s.csv"
    src.write_text("prompt,response,label\nhi,hello,maybe\n")
    with pytest.raises(ValueError, match=rf"^{src}:2: label 'maybe' is not one of harmful/unsafe/1 or benign/safe/0$"):
        load_suite(src)
    with pytest.raises(ValueError, match=rf"^{src}:2: label 'maybe' is not one of harmful/unsafe/1 or benign/safe/0$"):
        import_file("csv", src, tmp_path / "t.jsonl", model="m")


def test_find_refusal_is_the_refusal_judges_matcher():
    from tracesafe.judges.refusal import RefusalJudge, find_refusal

    text = "Let me think. " * 40 + "So I won't provide that."
    assert find_refusal("I'm sorry, but I can't help with that.") == RefusalJudge().find("I'm sorry, but I can't help with that.")
    assert find_refusal(text) is None and find_refusal(text, tail=300) == RefusalJudge().find(text, 300) is not None


def test_every_plugin_kind_is_one_registry_with_the_same_errors():
    from tracesafe._util import Registry
    from tracesafe.formats._base import FORMATS
    from tracesafe.importers import IMPORTERS
    from tracesafe.judges import register_judge
    from tracesafe.judges._base import JUDGES
    from tracesafe.suites import BUILTIN
    from tracesafe.suites.local import LOCAL

    assert all(isinstance(r, Registry) for r in (FORMATS, IMPORTERS, JUDGES, BUILTIN, LOCAL))
    assert IMPORTERS.names()[:5] == ["jsonl", "csv", "parquet", "arrow", "datasets"]  # the CLI's listing order
    assert [name for name, imp in IMPORTERS.items() if imp.table] == IMPORTERS.names()[:5]
    with pytest.raises(ValueError, match=r"^judge 'refusal' is already registered by tracesafe\.judges\.refusal$"):
        register_judge("refusal")(type("Other", (), {}))
    with pytest.raises(ValueError, match=r"^unknown built-in suite 'nope'; known: harmbench, sst, strongreject"):
        BUILTIN.get("nope")


@pytest.mark.parametrize("unit", ["items", "bytes"])
def test_progress_on_a_terminal_draws_a_bar_and_closes_it(capsys, monkeypatch, unit):
    import sys

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    with progress("judge x", 4, unit=unit, transient=False) as advance:
        advance(4)
    err = capsys.readouterr().err
    assert "judge x" in err and ("4/4" in err if unit == "items" else "4 bytes" in err), err


def test_log_setup_chooses_the_level_and_can_hand_logging_to_the_host(capsys):
    import logging

    from tracesafe._util import log

    logger = logging.getLogger("tracesafe.store")
    try:
        log.setup("INFO")
        logger.info("read %d lines", 3)
        log.setup(stderr=False)
        logger.warning("not on stderr")
        assert capsys.readouterr().err == "info: read 3 lines\n"
    finally:
        log.setup()
        logging.getLogger("tracesafe").setLevel(logging.NOTSET)
    logger.warning("back")
    assert capsys.readouterr().err == "warning: back\n"


def test_interrupts_deferred_holds_ctrl_c_and_restores_handlers_even_mid_swap(monkeypatch):
    import os
    import signal

    from tracesafe._util.interrupts import interrupts_deferred

    default = signal.default_int_handler
    previous = {s: signal.signal(s, default) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        done = []
        with pytest.raises(KeyboardInterrupt):
            with interrupts_deferred():
                os.kill(os.getpid(), signal.SIGTERM)
                done.append("after the signal")  # still runs: the interrupt waits for the end of the block
        assert done == ["after the signal"]
        assert all(signal.getsignal(s) is default for s in previous)
        # An error of the block's own goes on as it is.
        with pytest.raises(OSError, match="disk full"):
            with interrupts_deferred():
                os.kill(os.getpid(), signal.SIGINT)
                raise OSError("disk full")
        # signal.signal runs a pending signal before it swaps: one landing while the handlers are swapped in or put
        # back must not leave a recording handler behind (a Ctrl-C or SIGTERM ignored for good).
        swap = signal.signal
        for at in (2, 3, 4):  # the 2nd call swaps SIGTERM in; the 3rd and 4th put SIGINT and SIGTERM back
            calls = []

            def signal_then_swap(s, handler, at=at, calls=calls):
                calls.append(s)
                if len(calls) == at:
                    os.kill(os.getpid(), signal.SIGINT)
                return swap(s, handler)

            monkeypatch.setattr(signal, "signal", signal_then_swap)
            with pytest.raises(KeyboardInterrupt):
                with interrupts_deferred():
                    pass
            monkeypatch.setattr(signal, "signal", swap)
            assert all(signal.getsignal(s) is default for s in previous), at
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
