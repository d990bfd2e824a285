"""Separate a reasoning trace into thinking and final answer, for every format in the wild.

The policy (one rule decides, and is recorded as ``split_rule``, the family as ``split_format``):

1. ``api_field``: a non-empty ``reasoning`` (API ``reasoning_content``/``reasoning``, or a server-side
   reasoning parser) is the thinking; ``raw`` is the answer.
2. ``template_forced``: the rendered prompt ends with an opening marker (plus optional whitespace), as
   the DeepSeek-R1-Distill and QwQ templates do, so the generation starts inside the thought. A prompt
   that ends with a closing marker (SafeChain's ZeroThink/LessThink prefill, Qwen3 with thinking off)
   closed the thought itself: all of raw is the answer, thinking "", status ``complete``. A family whose
   template always opens the thought (``forced_open``) gets the same reading when it is named.
3. ``thinking_off``: the recorded chat-template switches (``enable_thinking``, ``thinking``,
   ``thinking_mode``, ``reasoning_effort``) turned thinking off: all of raw is the answer.
4. ``harmony``: gpt-oss channels (see ``formats/harmony.py``).
5. ``tag``: an opening marker at the start of raw; thinking runs to the FIRST matching closing marker.
6. ``bare_close``: a closing marker with no opening marker before it (a template-forced opening that
   was not recorded) splits there; so does an opening marker after non-blank text when a closing marker
   follows (flagged ``split_opener_mid_text``: the opener was quoted inside a forced thought).
7. ``none``: no marker: thinking "", answer = raw, status ``no_thinking``.

The family (``tracesafe.formats``) is named with ``format=`` or detected from the rendered prompt and
then from the first marker in raw. No byte of raw is dropped: thinking, answer, markers and whitespace
account for all of it. Text before a mid-text opener whose thought never closes is the answer. An
opening without its closing marker (cut at max_tokens) gives thinking = the rest, status
``unterminated``; a tool-call start ends such a thought, the call going to the answer. Thinking and
answer are stripped of surrounding whitespace and otherwise exact. Peers differ on purpose: lm-eval and
garak split at the LAST ``</think>``, inspect_ai needs a closed pair, garak empties a truncated trace; a
model that writes ``</think>`` inside its answer is split at its first close here, which is where the
thought ended. README lists the differences from vLLM's parsers.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import orjson

from .formats import Split, get, thinking_off
from .formats._base import detect_split, from_prompt, prompt_tail
from .records import Trace

__all__ = ["Split", "split", "split_file", "split_of", "split_record", "split_text"]


def split_text(
    raw: str,
    reasoning: str | None = None,
    prompt_rendered: str | None = None,
    *,
    format: str | None = None,
    chat_template_kwargs: Mapping[str, Any] | None = None,
) -> Split:
    """Split one generation. ``raw`` is the engine text exactly as returned; ``format`` names a family
    (``tracesafe formats list``; None or "auto": detect); ``chat_template_kwargs`` are the switches the
    prompt was rendered with."""
    fmt = None if format is None or format == "auto" else get(format)
    if reasoning:
        return Split(reasoning.strip(), raw.strip(), "complete", "api_field", fmt.name if fmt else "api")
    if prompt_rendered:
        tail = prompt_rendered[-64:].rstrip()  # markers are short; avoid copying a long prompt
        hit = prompt_tail(tail, fmt)
        if hit is not None:
            family, pair, is_open = hit
            if not is_open:  # the prompt closed the thought (ZeroThink/LessThink prefill, thinking off)
                return Split("", raw.strip(), "complete", "template_forced", family.name)
            return family.forced(raw, pair)
        if fmt is None:
            fmt = from_prompt(prompt_rendered)
    if chat_template_kwargs and thinking_off(chat_template_kwargs):
        return Split("", raw.strip(), "no_thinking", "thinking_off", fmt.name if fmt else "none")
    if fmt is not None:
        return fmt.split(raw, known=fmt.forced_by(chat_template_kwargs))
    return detect_split(raw)


def _template_kwargs(rec: dict[str, Any]) -> Any:
    params = rec.get("params")
    kw = params.get("chat_template_kwargs") if isinstance(params, dict) else None
    return kw if isinstance(kw, dict) else rec.get("chat_template_kwargs")


_READS = ("raw", "reasoning", "prompt_rendered")  # the fields a split reads; the rest pass through


def split_of(rec: dict[str, Any], format: str | None = None) -> Split:
    """The split of a trace record (its raw, reasoning, rendered prompt and chat-template switches)."""
    raw = rec.get("raw")
    if not isinstance(raw, str):
        raise ValueError("record has no string field 'raw'")
    Trace.check(rec, _READS)
    return split_text(raw, rec.get("reasoning"), rec.get("prompt_rendered"), format=format,
                      chat_template_kwargs=_template_kwargs(rec))  # fmt: skip


def _fields(s: Split) -> dict[str, Any]:
    out = {"thinking": s.thinking, "answer": s.answer, "split_status": s.status, "split_rule": s.rule, "split_format": s.format}
    if s.opener_mid_text:
        out["split_opener_mid_text"] = True
    return out


def split_record(rec: dict[str, Any], format: str | None = None) -> dict[str, Any]:
    """Add thinking, answer, split_status, split_rule and split_format (and split_opener_mid_text when
    set) to a record (in place); returns it."""
    rec.update(_fields(split_of(rec, format)))
    return rec


def split(records: Iterable[dict[str, Any]], format: str | None = None) -> Iterator[dict[str, Any]]:
    """Split a stream of records (dicts with ``raw``); other fields pass through unchanged."""
    for rec in records:
        yield split_record(rec, format)


_ADDED = ("thinking", "answer", "split_status", "split_rule", "split_format", "split_opener_mid_text")
_WS = b" \t\r\n"


def _write_spliced(write, line: bytes, rec: dict[str, Any], s: Split) -> None:
    """Write the input line with the split fields appended to its object: the (large) input fields are
    copied as bytes, not re-encoded. Falls back to a full re-encode when a split field exists already."""
    end = len(line)
    while end and line[end - 1] in _WS:
        end -= 1
    if line[end - 1 : end] == b"}" and not any(k in rec for k in _ADDED):
        tail = orjson.dumps(_fields(s), option=orjson.OPT_APPEND_NEWLINE)
        mv = memoryview(line)
        write(mv[: end - 1])
        write(b",")
        write(memoryview(tail)[1:])
        return
    for k in _ADDED:  # a re-split replaces every split field, including a stale flag
        rec.pop(k, None)
    rec.update(_fields(s))
    write(orjson.dumps(rec, option=orjson.OPT_APPEND_NEWLINE))


def _split_range(src: str, start: int, stop: int, out, on_bad_line: str, format: str | None = None) -> tuple[dict[str, int], int, tuple[int, str] | None]:
    """Split the lines that begin in [start, stop) of ``src`` into the open binary file ``out``.
    Returns counts, the number of lines read, and the first bad line (local line number, reason)
    when ``on_bad_line`` is "error"."""
    counts = {"complete": 0, "unterminated": 0, "no_thinking": 0, "skipped": 0}
    loads, write = orjson.loads, out.write
    lineno = 0
    with open(src, "rb", buffering=1 << 20) as fin:
        fin.seek(start)
        pos = start
        for line in fin:
            if pos >= stop:
                break
            pos += len(line)
            lineno += 1
            if line[0] in _WS and not line.strip():  # blank line; avoid copying every line to test
                continue
            try:
                rec = loads(line)
                if not isinstance(rec, dict):
                    raise ValueError("expected a JSON object")
                s = split_of(rec, format)
            except (orjson.JSONDecodeError, ValueError) as e:
                if on_bad_line == "error":
                    return counts, lineno, (lineno, str(e))
                counts["skipped"] += 1
                continue
            counts[s.status] += 1
            _write_spliced(write, line, rec, s)
    return counts, lineno, None


def _chunk_job(args: tuple[str, str, int, int, str, str | None]):
    src, part, start, stop, on_bad_line, format = args
    # Large buffer: per-batch joins would allocate fresh pages each time and cost more in page
    # faults than the splitting itself.
    with open(part, "wb", buffering=1 << 22) as out:
        return _split_range(src, start, stop, out, on_bad_line, format)


def _boundaries(src: str, size: int, chunk: int) -> list[int]:
    """Byte offsets that start a line, about ``chunk`` apart, from 0 to size."""
    cuts = [0]
    with open(src, "rb") as f:
        while cuts[-1] + chunk < size:
            f.seek(cuts[-1] + chunk)
            f.readline()  # move to the start of the next line
            pos = f.tell()
            if pos >= size:
                break
            cuts.append(pos)
    cuts.append(size)
    return cuts


def split_file(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    on_bad_line: str = "error",
    progress=None,
    workers: int | None = None,
    chunk_bytes: int = 8 << 20,
    format: str | None = None,
) -> dict[str, int]:
    """Split every line of ``src`` into ``dst`` (written atomically, input order kept). Large files
    are split in ``chunk_bytes`` pieces by ``workers`` processes (default: the CPUs available);
    memory is constant in the file size. ``format`` names a reasoning family (default: detect per
    record). Returns counts per split_status plus ``skipped`` bad lines."""
    from .store import atomic_output

    if format is not None and format != "auto":
        get(format)  # an unknown name fails before any work
    with atomic_output(dst, [src]) as tmp:
        return _split_into(str(src), str(tmp), on_bad_line, progress, workers, chunk_bytes, format)


def _split_into(src: str, tmp: str, on_bad_line: str, progress, workers: int | None, chunk_bytes: int,
                format: str | None) -> dict[str, int]:  # fmt: skip
    from .store import BadLineError

    size = os.path.getsize(src)
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    cuts = _boundaries(src, size, chunk_bytes)
    jobs = [(src, f"{tmp}.{i}", a, b, on_bad_line, format) for i, (a, b) in enumerate(zip(cuts, cuts[1:]))]
    total = {"complete": 0, "unterminated": 0, "no_thinking": 0, "skipped": 0}
    lines_before = 0
    pool = None
    try:
        if workers > 1 and len(jobs) > 1:
            import multiprocessing as mp

            # fork: workers need nothing but this module, and start in milliseconds. A forked worker inherits the
            # parent's signal handlers; it must die on the pool's SIGTERM whatever the caller installed.
            pool = mp.get_context("fork").Pool(min(workers, len(jobs)), initializer=_default_sigterm)
            results = pool.imap(_chunk_job, jobs)
        else:
            results = map(_chunk_job, jobs)
        with open(tmp, "wb") as out:
            for (_, part, a, b, *_), (counts, nlines, bad) in zip(jobs, results):
                if bad is not None:
                    raise BadLineError(src, lines_before + bad[0], bad[1])
                for k, v in counts.items():
                    total[k] += v
                lines_before += nlines
                with open(part, "rb") as f:
                    _copy(f, out)
                os.unlink(part)
                if progress is not None:
                    progress(b - a)
    finally:
        if pool is not None:
            pool.terminate()
        for _, part, *_ in jobs:
            if os.path.exists(part):
                os.unlink(part)
    return total


def _default_sigterm() -> None:
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _copy(fin, fout) -> None:
    try:  # kernel-side copy where the filesystem allows it
        n = os.fstat(fin.fileno()).st_size
        off = 0
        while off < n:
            off += os.copy_file_range(fin.fileno(), fout.fileno(), n - off)
    except (AttributeError, OSError):
        import shutil

        fin.seek(0)
        shutil.copyfileobj(fin, fout, 1 << 22)
