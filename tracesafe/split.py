"""Separate a reasoning trace into thinking and final answer, for every format in the wild.

The policy (one rule decides, and is recorded as ``split_rule``, the family as ``split_format``):

1. ``api_field``: a non-empty ``reasoning`` (API ``reasoning_content``/``reasoning``, or a server-side
   reasoning parser) is the thinking; ``raw`` is the answer. With no answer and a ``finish_reason`` of a cut
   at the token budget (``CUT_OFF``: "length"; inspect's "max_tokens", "model_length") the model was cut off
   while thinking: status ``unterminated``, as for a tag-based thought.
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
thought ended. docs/formats.md lists the differences from vLLM's parsers.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import orjson

from .formats import Split, get, thinking_off
from .formats._base import detect_split, from_prompt, prompt_tail
from .records import Trace

log = logging.getLogger(__name__)

__all__ = ["Split", "never_split", "split", "split_file", "split_of", "split_record", "split_text"]


# finish/stop reasons of a generation cut at its token budget: OpenAI-style APIs and vLLM ("length"), inspect_ai
CUT_OFF = frozenset({"length", "max_tokens", "model_length"})


def split_text(
    raw: str,
    reasoning: str | None = None,
    prompt_rendered: str | None = None,
    *,
    format: str | None = None,
    chat_template_kwargs: Mapping[str, Any] | None = None,
    finish_reason: str | None = None,
) -> Split:
    """Split one generation. ``raw`` is the engine text exactly as returned; ``format`` names a family
    (``tracesafe formats list``; None or "auto": detect); ``chat_template_kwargs`` are the switches the
    prompt was rendered with; ``finish_reason`` tells a thought in ``reasoning`` that was cut off."""
    fmt = None if format is None or format == "auto" else get(format)
    if reasoning:
        answer = raw.strip()
        status = "unterminated" if finish_reason in CUT_OFF and not answer else "complete"
        return Split(reasoning.strip(), answer, status, "api_field", fmt.name if fmt else "api")
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


_READS = ("raw", "reasoning", "prompt_rendered", "finish_reason")  # the fields a split reads; the rest pass through


def split_of(rec: dict[str, Any], format: str | None = None) -> Split:
    """The split of a trace record (its raw, reasoning, rendered prompt and chat-template switches)."""
    raw = rec.get("raw")
    if not isinstance(raw, str):
        raise ValueError("record has no string field 'raw'")
    Trace.check(rec, _READS)
    return split_text(raw, rec.get("reasoning"), rec.get("prompt_rendered"), format=format,
                      chat_template_kwargs=_template_kwargs(rec), finish_reason=rec.get("finish_reason"))  # fmt: skip


def never_split(rec: dict[str, Any]) -> bool:
    """A trace with raw text and neither thinking nor answer: judge, report and export split it on the fly."""
    return rec.get("thinking") is None and rec.get("answer") is None and isinstance(rec.get("raw"), str)


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
_ADDED_KEYS = frozenset(_ADDED)
_WS = b" \t\r\n"


class _Spool:
    """A worker's output for one span, held until its offset in the output is known. The buffer only ever
    grows, so its pages are touched once per process, not once per span."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.size = 0

    def write(self, piece) -> None:
        end = self.size + len(piece)
        self.buf[self.size : end] = piece  # past the end, this grows the buffer
        self.size = end

    def pwrite(self, fd: int, offset: int) -> None:
        with memoryview(self.buf) as view:
            done = 0
            while done < self.size:  # a short write (a signal, a file size limit) goes on where it stopped
                done += os.pwrite(fd, view[done : self.size], offset + done)
        self.size = 0


def _split_range(src: str, start: int, stop: int, write, on_bad_line: str, format: str | None = None,
                 ) -> tuple[dict[str, int], int, tuple[int, str] | None, list[tuple[int, str]]]:  # fmt: skip
    """Split the lines that begin in bytes [start, stop) of ``src``, passing the output to ``write``
    piece by piece. Returns counts, the number of lines read, the first bad line (local line number,
    reason) when ``on_bad_line`` is "error", and the lines skipped (local line number, reason) otherwise.

    Each output line is the input line with the split fields spliced in before its closing brace: the
    (large) input fields are copied as bytes, never re-encoded. A record that has split fields already
    is re-encoded whole, since a re-split replaces them all (a stale flag included)."""
    counts = {"complete": 0, "unterminated": 0, "no_thinking": 0, "skipped": 0}
    loads, dumps, newline = orjson.loads, orjson.dumps, orjson.OPT_APPEND_NEWLINE
    fresh = _ADDED_KEYS.isdisjoint
    lineno = 0
    skipped: list[tuple[int, str]] = []
    with open(src, "rb", buffering=1 << 20) as fin:
        fin.seek(start)
        pos = start
        for line in fin:
            if pos >= stop:
                break
            pos += len(line)
            lineno += 1
            if line[0] in _WS and not line.strip():  # a blank line (tested only when it starts blank)
                continue
            try:
                rec = loads(line)
                if not isinstance(rec, dict):
                    raise ValueError("expected a JSON object")
                s = split_of(rec, format)
            except (orjson.JSONDecodeError, ValueError) as e:
                from .store import json_error

                if on_bad_line == "error":
                    return counts, lineno, (lineno, json_error(line, e)), skipped
                counts["skipped"] += 1
                skipped.append((lineno, json_error(line, e)))
                continue
            counts[s.status] += 1
            if fresh(rec):
                brace = len(line) - 2  # the object's closing brace, before the newline as writers put it
                if line[brace + 1] != 10 or line[brace] != 125:  # other trailing blanks, or no newline at the end
                    brace = len(line.rstrip(_WS)) - 1
                write(memoryview(line)[:brace])
                write(b",")
                write(memoryview(dumps(_fields(s), option=newline))[1:])
            else:
                for k in _ADDED:
                    rec.pop(k, None)
                rec.update(_fields(s))
                write(dumps(rec, option=newline))
    return counts, lineno, None, skipped


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
    from ._util.atomic import atomic_output

    if format is not None and format != "auto":
        get(format)  # an unknown name fails before any work
    import stat

    if not stat.S_ISREG(os.stat(src).st_mode):  # chunks are read from offsets, which a pipe does not have
        raise ValueError(f"{src}: not a regular file (a pipe?): split reads a file it can seek; save the stream to a file first")
    with atomic_output(dst, [src]) as tmp:
        return _split_into(str(src), str(tmp), on_bad_line, progress, workers, chunk_bytes, format)


def _split_into(src: str, tmp: str, on_bad_line: str, progress, workers: int | None, chunk_bytes: int,
                format: str | None) -> dict[str, int]:  # fmt: skip
    from .store import BadLineError

    size = os.path.getsize(src)
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    cuts = _boundaries(src, size, chunk_bytes)
    spans = list(zip(cuts, cuts[1:]))
    total = {"complete": 0, "unterminated": 0, "no_thinking": 0, "skipped": 0}
    lines_before = 0

    def add(counts: dict[str, int], nlines: int, bad: tuple[int, str] | None, skipped: list[tuple[int, str]], nbytes: int) -> None:
        nonlocal lines_before
        if bad is not None:
            raise BadLineError(src, lines_before + bad[0], bad[1])
        for lineno, reason in skipped:  # named as the readers name theirs (store.read_jsonl)
            log.warning("skipped %s:%d: %s", src, lines_before + lineno, reason)
        for k, v in counts.items():
            total[k] += v
        lines_before += nlines
        if progress is not None:
            progress(nbytes)

    if workers < 2 or len(spans) < 2:  # one process: straight into the output, a span at a time (for progress)
        # A large buffer, filled and written again and again: its pages stay mapped.
        with open(tmp, "wb", buffering=1 << 22) as out:
            for a, b in spans:
                add(*_split_range(src, a, b, out.write, on_bad_line, format), b - a)
        return total
    fd = os.open(tmp, os.O_WRONLY)
    try:
        # Worker w splits spans w, w + n, ... into memory, reports each one's size, and writes it at the
        # offset this process answers once every earlier span's size is known: each byte is written once,
        # by the worker that made it, and no lock is shared, so stopping a worker can never hang this one.
        import multiprocessing as mp

        ctx = mp.get_context("fork")  # workers need nothing but this module, and start in milliseconds
        n = min(workers, len(spans))
        conns, procs = [], []
        try:
            for w in range(n):
                mine, theirs = ctx.Pipe()
                conns.append(mine)
                # The child closes its copies of this process's ends (its own and earlier workers'): were one left
                # open, a worker would never see EOF when this process dies (kill -9) and would wait forever.
                p = ctx.Process(target=_worker, args=(theirs, list(conns), os.getpid(), src, fd, spans[w::n], on_bad_line, format),
                                daemon=True)  # fmt: skip
                p.start()
                procs.append(p)
                theirs.close()
            offset = 0
            for i, (a, b) in enumerate(spans):
                counts, nlines, bad, skipped, nbytes = _receive(src, conns[i % n], procs[i % n])
                add(counts, nlines, bad, skipped, b - a)
                try:
                    conns[i % n].send(offset)
                except BrokenPipeError:  # the worker died after reporting (out of memory?): as _receive says it
                    procs[i % n].join()
                    raise ChildProcessError(f"{src}: a split worker process stopped (exit code {procs[i % n].exitcode})") from None
                offset += nbytes
            for c, p in zip(conns, procs):  # each has written all its spans
                _receive(src, c, p)
        finally:
            for p in procs:
                p.kill()  # SIGKILL: a no-op for a worker that is done
                p.join()
        return total
    finally:
        os.close(fd)


def _worker(conn, parent_ends: list, parent: int, src: str, fd: int, spans: list[tuple[int, int]], on_bad_line: str,
            format: str | None) -> None:  # fmt: skip
    import signal
    import sys

    # A forked worker inherits the parent's signal handlers; a SIGTERM meant for the job must end it.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform == "linux":  # end with the parent however it ends (SIGKILL gives it no time to stop us)
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it ended before that took effect
        return
    for end in parent_ends:
        end.close()
    try:
        spool = _Spool()
        for a, b in spans:
            counts, nlines, bad, skipped = _split_range(src, a, b, spool.write, on_bad_line, format)
            conn.send((counts, nlines, bad, skipped, spool.size))
            if bad is not None:
                return
            spool.pwrite(fd, conn.recv())
        conn.send(None)
    except (EOFError, BrokenPipeError):  # the parent stopped
        pass
    except BaseException as e:  # noqa: BLE001 - an OSError writing (disk full), Ctrl-C: the parent raises it
        try:
            conn.send(e)
        except OSError:  # the parent is gone too
            pass


def _receive(src: str, conn, proc):
    try:
        msg = conn.recv()
    except EOFError:  # killed (out of memory?) or crashed: say so rather than wait for it
        proc.join()
        raise ChildProcessError(f"{src}: a split worker process stopped (exit code {proc.exitcode})") from None
    if isinstance(msg, BaseException):
        raise msg
    return msg
