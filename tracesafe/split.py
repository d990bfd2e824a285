"""Separate a reasoning trace into thinking and final answer, for every format in the wild.

The policy (one rule decides, and is recorded as ``split_rule``):

1. ``api_field``: a non-empty ``reasoning`` (API ``reasoning_content``/``reasoning``, or a server-side
   reasoning parser) is the thinking; ``raw`` is the answer.
2. ``harmony``: gpt-oss channels. Thinking is the ``analysis`` channel message(s) (each up to
   ``<|end|>``), the answer is the ``final`` channel message up to ``<|return|>``/``<|end|>``.
3. ``template_forced``: the rendered prompt ends with an opening marker (plus optional whitespace), as
   the DeepSeek-R1-Distill and QwQ templates do, so the generation starts inside the thought. A prompt
   that ends with a closing marker (SafeChain's ZeroThink/LessThink prefill) closed the thought itself:
   all of raw is the answer, thinking "", status ``complete``.
4. ``tag``: an opening marker in ``raw``; thinking runs to the FIRST matching closing marker after it.
5. ``bare_close``: a closing marker with no opening marker before it (template-forced opening that
   was not recorded) splits there.
6. ``none``: no marker: thinking "", answer = raw, status ``no_thinking``.

An opening without its closing marker (cut at max_tokens) gives thinking = the rest, answer "",
status ``unterminated``. Thinking and answer are stripped of surrounding whitespace and otherwise
exact. Peers differ on purpose: lm-eval and garak split at the LAST ``</think>``, inspect_ai needs a
closed pair, garak empties a truncated trace; a model that writes ``</think>`` inside its answer is
split at its first close here, which is where the thought ended.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from .records import SplitRule, SplitStatus, Trace

# (open, close). Sky-T1's thought markers come with a solution block handled below.
TAG_PAIRS: tuple[tuple[str, str], ...] = (
    ("<think>", "</think>"),
    ("<thinking>", "</thinking>"),
    ("<reasoning>", "</reasoning>"),
    ("<seed:think>", "</seed:think>"),
    ("<|begin_of_thought|>", "<|end_of_thought|>"),
)
SKY_SOLUTION = ("<|begin_of_solution|>", "<|end_of_solution|>")
HARMONY_CHANNEL = "<|channel|>"
HARMONY_MESSAGE = "<|message|>"
HARMONY_ENDS = ("<|end|>", "<|return|>", "<|call|>")


@dataclass(frozen=True, slots=True)
class Split:
    thinking: str
    answer: str
    status: SplitStatus
    rule: SplitRule


# Every marker that can decide a split, for one left-to-right pass over "<" (rare in prose, so the
# pass costs about one memchr over the text instead of one full search per marker).
_OPENS = {pair[0]: i for i, pair in enumerate(TAG_PAIRS)}
_CLOSES = {pair[1]: i for i, pair in enumerate(TAG_PAIRS)}
_DECIDING = tuple(_OPENS) + tuple(_CLOSES) + (HARMONY_CHANNEL,)
_CLOSE_MARKERS = tuple(_CLOSES)


def split_text(raw: str, reasoning: str | None = None, prompt_rendered: str | None = None) -> Split:
    """Split one generation. ``raw`` is the engine text exactly as returned."""
    if reasoning:
        return Split(reasoning.strip(), raw.strip(), "complete", "api_field")
    if prompt_rendered:
        tail = prompt_rendered[-64:].rstrip()  # markers are short; avoid copying a long prompt
        if tail.endswith(_CLOSE_MARKERS):  # the prompt closed the thought (ZeroThink/LessThink prefill)
            return Split("", raw.strip(), "complete", "template_forced")
        forced = _forced_pair(tail)
        if forced is not None:
            opening, closing = forced
            body = raw
            head = body.lstrip()
            if head.startswith(opening):  # the model repeated the forced marker
                body = head[len(opening) :]
            return _close(body, 0, opening, closing, "template_forced")
    pos, marker = _first_marker(raw)
    if marker is None:
        return Split("", raw.strip(), "no_thinking", "none")
    if marker == HARMONY_CHANNEL:
        harmony = _split_harmony(raw)
        if harmony is not None:
            return harmony
        return Split("", raw.strip(), "no_thinking", "none")
    if marker in _CLOSES:
        return _finish(raw[:pos], raw[pos + len(marker) :], TAG_PAIRS[_CLOSES[marker]][0], "bare_close")
    return _close(raw, pos + len(marker), marker, TAG_PAIRS[_OPENS[marker]][1], "tag")


def _first_marker(text: str) -> tuple[int, str | None]:
    i = text.find("<")
    while i != -1:
        for marker in _DECIDING:
            if text.startswith(marker, i):
                return i, marker
        i = text.find("<", i + 1)
    return -1, None


def _first_of(text: str, start: int, needles: list[str]) -> tuple[int, int]:
    best, which = -1, -1
    for i, needle in enumerate(needles):
        j = text.find(needle, start, best if best != -1 else len(text))
        if j != -1 and (best == -1 or j < best):
            best, which = j, i
    return best, which


def _forced_pair(tail: str) -> tuple[str, str] | None:
    for opening, closing in TAG_PAIRS:
        if tail.endswith(opening):
            return opening, closing
    return None


def _close(text: str, start: int, opening: str, closing: str, rule: SplitRule) -> Split:
    end = text.find(closing, start)
    if end == -1:
        return Split(text[start:].strip(), "", "unterminated", rule)
    return _finish(text[start:end], text[end + len(closing) :], opening, rule)


def _finish(thinking: str, answer: str, opening: str, rule: SplitRule) -> Split:
    if opening == "<|begin_of_thought|>":
        s = answer.find(SKY_SOLUTION[0])
        if s != -1:
            s += len(SKY_SOLUTION[0])
            e = answer.find(SKY_SOLUTION[1], s)
            answer = answer[s:] if e == -1 else answer[s:e]
    return Split(thinking.strip(), answer.strip(), "complete", rule)


def _split_harmony(raw: str) -> Split | None:
    """Channels of a harmony completion; None if no analysis/final message header is present."""
    analysis: list[str] = []
    final: str | None = None
    pos = 0
    found = False
    while True:
        c = raw.find(HARMONY_CHANNEL, pos)
        if c == -1:
            break
        m = raw.find(HARMONY_MESSAGE, c)
        if m == -1:
            break
        # Header: "<|channel|>final <|constrain|>json<|message|>" -> channel name is the first word.
        channel = raw[c + len(HARMONY_CHANNEL) : m].split("<", 1)[0].split(" ", 1)[0].strip()
        body_start = m + len(HARMONY_MESSAGE)
        end, _ = _first_of(raw, body_start, list(HARMONY_ENDS))
        body = raw[body_start:] if end == -1 else raw[body_start:end]
        found = True
        if channel == "final":
            final = body
            break
        if channel == "analysis":
            analysis.append(body)
        if end == -1:
            break
        pos = end
    if not found:
        return None
    thinking = "\n".join(a.strip() for a in analysis)
    if final is None:
        status: SplitStatus = "unterminated" if analysis else "no_thinking"
        return Split(thinking, "", status, "harmony")
    status = "complete" if analysis else "no_thinking"
    return Split(thinking, final.strip(), status, "harmony")


_READS = ("raw", "reasoning", "prompt_rendered")  # the fields a split reads; the rest pass through


def split_record(rec: dict[str, Any]) -> dict[str, Any]:
    """Add thinking, answer, split_status and split_rule to a record (in place); returns it."""
    raw = rec.get("raw")
    if not isinstance(raw, str):
        raise ValueError("record has no string field 'raw'")
    Trace.check(rec, _READS)
    s = split_text(raw, rec.get("reasoning"), rec.get("prompt_rendered"))
    rec["thinking"] = s.thinking
    rec["answer"] = s.answer
    rec["split_status"] = s.status
    rec["split_rule"] = s.rule
    return rec


def split(records: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Split a stream of records (dicts with ``raw``); other fields pass through unchanged."""
    for rec in records:
        yield split_record(rec)


_ADDED = ("thinking", "answer", "split_status", "split_rule")
_WS = b" \t\r\n"


def _write_spliced(write, line: bytes, rec: dict[str, Any], s: Split) -> None:
    """Write the input line with the split fields appended to its object: the (large) input fields are
    copied as bytes, not re-encoded. Falls back to a full re-encode when a split field exists already."""
    end = len(line)
    while end and line[end - 1] in _WS:
        end -= 1
    if line[end - 1 : end] == b"}" and not any(k in rec for k in _ADDED):
        tail = orjson.dumps(
            {"thinking": s.thinking, "answer": s.answer, "split_status": s.status, "split_rule": s.rule},
            option=orjson.OPT_APPEND_NEWLINE,
        )
        mv = memoryview(line)
        write(mv[: end - 1])
        write(b",")
        write(memoryview(tail)[1:])
        return
    rec.update(thinking=s.thinking, answer=s.answer, split_status=s.status, split_rule=s.rule)
    write(orjson.dumps(rec, option=orjson.OPT_APPEND_NEWLINE))


def _split_range(src: str, start: int, stop: int, out, on_bad_line: str) -> tuple[dict[str, int], int, tuple[int, str] | None]:
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
                raw = rec.get("raw")
                if not isinstance(raw, str):
                    raise ValueError("record has no string field 'raw'")
                Trace.check(rec, _READS)
                s = split_text(raw, rec.get("reasoning"), rec.get("prompt_rendered"))
            except (orjson.JSONDecodeError, ValueError) as e:
                if on_bad_line == "error":
                    return counts, lineno, (lineno, str(e))
                counts["skipped"] += 1
                continue
            counts[s.status] += 1
            _write_spliced(write, line, rec, s)
    return counts, lineno, None


def _chunk_job(args: tuple[str, str, int, int, str]):
    src, part, start, stop, on_bad_line = args
    # Large buffer: per-batch joins would allocate fresh pages each time and cost more in page
    # faults than the splitting itself.
    with open(part, "wb", buffering=1 << 22) as out:
        return _split_range(src, start, stop, out, on_bad_line)


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
) -> dict[str, int]:
    """Split every line of ``src`` into ``dst`` (written atomically, input order kept). Large files
    are split in ``chunk_bytes`` pieces by ``workers`` processes (default: the CPUs available);
    memory is constant in the file size. Returns counts per split_status plus ``skipped`` bad lines."""
    from .store import atomic_output

    with atomic_output(dst, [src]) as tmp:
        return _split_into(str(src), str(tmp), on_bad_line, progress, workers, chunk_bytes)


def _split_into(src: str, tmp: str, on_bad_line: str, progress, workers: int | None, chunk_bytes: int) -> dict[str, int]:
    from .store import BadLineError

    size = os.path.getsize(src)
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    cuts = _boundaries(src, size, chunk_bytes)
    jobs = [(src, f"{tmp}.{i}", a, b, on_bad_line) for i, (a, b) in enumerate(zip(cuts, cuts[1:]))]
    total = {"complete": 0, "unterminated": 0, "no_thinking": 0, "skipped": 0}
    lines_before = 0
    pool = None
    try:
        if workers > 1 and len(jobs) > 1:
            import multiprocessing as mp

            # fork: workers need nothing but this module, and start in milliseconds.
            pool = mp.get_context("fork").Pool(min(workers, len(jobs)))
            results = pool.imap(_chunk_job, jobs)
        else:
            results = map(_chunk_job, jobs)
        with open(tmp, "wb") as out:
            for (_, part, a, b, _), (counts, nlines, bad) in zip(jobs, results):
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
