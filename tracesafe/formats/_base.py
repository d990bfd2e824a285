"""The format type, the registry, and the tag-splitting rules every marker-based family shares."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .._util.registry import Registry
from ..records import SplitRule, SplitStatus


@dataclass(slots=True)  # not frozen: built once per trace, and a frozen init costs 4x
class Split:
    thinking: str
    answer: str
    status: SplitStatus
    rule: SplitRule
    format: str = "none"
    # An opening marker after non-blank text (a quoted literal, or a model that wrote a preamble).
    opener_mid_text: bool = False


@dataclass(frozen=True, slots=True)
class Pair:
    """Opening and closing markers of one kind of thought block; any opener matches any closer."""

    opens: tuple[str, ...]
    closes: tuple[str, ...]


@dataclass(frozen=True)
class Format:
    """A reasoning-output family. The default ``split`` implements the marker rules (tag, bare_close,
    template_forced, none); a family with another structure (harmony channels) overrides it."""

    name: str
    description: str
    pairs: tuple[Pair, ...] = ()
    # An answer wrapper after the thought (Sky-T1 solution, Hunyuan <answer>, Cohere response): unwrapped
    # only when nothing but whitespace lies outside it, so no text is ever dropped.
    answer_block: tuple[str, str] | None = None
    # Markers that start a tool call. When the thought has no closing marker, a tool call ends it; the
    # call itself goes to the answer, never to the thinking.
    tool_starts: tuple[str, ...] = ()
    # The family's chat template writes the opening marker into the prompt, so when the format is known
    # (named, or recognised from the prompt) text without an opener starts inside the thought.
    forced_open: bool = False
    # For a family whose template opens the thought only under some switches (Solar-Open2's
    # reasoning_effort, DeepSeek-V3.1's thinking): whether the recorded chat_template_kwargs did.
    forced_when: Callable[[Mapping[str, Any]], bool] | None = None
    # The family's parser treats text before a mid-text opener as answer even when the thought closes.
    prefix_is_content: bool = False
    # Detected from the text alone by its markers (False for families that share <think> with others).
    auto: bool = True
    # Substrings of a rendered prompt that identify the family (its chat-template tokens).
    prompt_signatures: tuple[str, ...] = ()
    # Openers recognised by auto-detection only at the start of the text (plain-language markers).
    start_only: bool = False
    # A rendered prompt ending with one of its markers opened or closed the thought (False where every
    # prompt ends that way: HyperCLOVAX 14B's closing marker is the ChatML assistant header).
    prompt_tail: bool = True
    vllm: str = ""  # the vLLM reasoning parser(s) this mirrors
    _scan: Scanner = field(default=None, init=False, repr=False, compare=False)  # type: ignore[assignment]
    _tools: Scanner = field(default=None, init=False, repr=False, compare=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        object.__setattr__(self, "_scan", Scanner((m, (self, p, m in p.opens)) for p in self.pairs for m in (*p.opens, *p.closes)))
        object.__setattr__(self, "_tools", Scanner((m, None) for m in self.tool_starts))

    @property
    def markers(self) -> tuple[str, ...]:
        out = [m for p in self.pairs for m in (*p.opens, *p.closes)]
        if self.answer_block:
            out += self.answer_block
        return tuple(out)

    def forced_by(self, kwargs: Mapping[str, Any] | None) -> bool:
        """Whether the template opened the thought, given the switches the prompt was rendered with."""
        return self.forced_when is None or self.forced_when(kwargs or {})

    def split(self, raw: str, known: bool = False) -> Split:
        """Split ``raw`` by this family's markers. ``known``: the family is certain (named or recognised
        from the prompt), which lets ``forced_open`` apply."""
        pos, marker, hit = self._scan.first(raw)
        if marker is None:
            if known and self.forced_open and self.pairs:
                return self.forced(raw, self.pairs[0])
            return Split("", raw.strip(), "no_thinking", "none", self.name)
        return self.split_at(raw, pos, marker, hit[1], hit[2], known)

    def split_at(self, raw: str, pos: int, marker: str, pair: Pair, is_open: bool, known: bool = False) -> Split:
        """Split at the first marker, found at ``pos``."""
        after = pos + len(marker)
        if not is_open:  # a closing marker first: the opener was forced by an unrecorded template
            return self._done(raw[:pos], raw[after:], "complete", "bare_close")
        if known and self.forced_open and not self.prefix_is_content and pos and not raw[:pos].isspace():
            return self.forced(raw, pair)  # the opener is quoted inside a forced thought
        if not pos or raw[:pos].isspace():
            return self._close(raw, after, pair, "tag")
        # Text before the opener is never discarded. With a closing marker after it, the first closing
        # marker ends the thought (bare_close: the opener was quoted inside a template-forced thought);
        # otherwise, or where the family's parser says so, the text before the opener is answer.
        if not self.prefix_is_content:
            end, close = _first_of(raw, after, pair.closes)
            if end != -1:
                return self._done(raw[:end], raw[end + len(close) :], "complete", "bare_close", mid=True)
        return self._close(raw, after, pair, "tag", prefix=raw[:pos], mid=True)

    def forced(self, raw: str, pair: Pair) -> Split:
        """The prompt opened the thought: ``raw`` starts inside it."""
        start = 0
        window = raw[:64]  # markers are short; avoid copying a long text to strip it
        head = window.lstrip()
        for opening in pair.opens:
            if head.startswith(opening):  # the model repeated the forced marker
                start = len(window) - len(head) + len(opening)
                break
        return self._close(raw, start, pair, "template_forced")

    def _close(self, raw: str, start: int, pair: Pair, rule: SplitRule, prefix: str = "", mid: bool = False) -> Split:
        end, close = _first_of(raw, start, pair.closes)
        if end != -1:
            return self._done(raw[start:end], raw[end + len(close) :], "complete", rule, prefix, mid)
        if self.tool_starts:
            t = self._tools.first(raw, start)[0]
            if t != -1:
                return self._done(raw[start:t], raw[t:], "complete", rule, prefix, mid)
        return Split(raw[start:].strip(), prefix.strip(), "unterminated", rule, self.name, mid)

    def _done(self, thinking: str, answer: str, status: SplitStatus, rule: SplitRule, prefix: str = "", mid: bool = False) -> Split:
        if self.answer_block:
            answer = _unwrap(answer, self.answer_block)
        return Split(thinking.strip(), (prefix + answer).strip() if prefix else answer.strip(), status, rule, self.name, mid)


def _first_of(text: str, start: int, needles: tuple[str, ...]) -> tuple[int, str]:
    if len(needles) == 1:  # most pairs have one closing marker
        return text.find(needles[0], start), needles[0]
    best, which = -1, ""
    for needle in needles:
        j = text.find(needle, start, best + len(needle) if best != -1 else len(text))
        if j != -1 and (best == -1 or j < best):
            best, which = j, needle
    return best, which


def _unwrap(answer: str, block: tuple[str, str]) -> str:
    s = answer.find(block[0])
    if s == -1 or (s and not answer[:s].isspace()):
        return answer
    s += len(block[0])
    e = answer.find(block[1], s)
    if e == -1:
        return answer[s:]
    tail = answer[e + len(block[1]) :]
    return answer[s:e] if not tail or tail.isspace() else answer


class Scanner:
    """Finds the first of many markers in one pass per leading character: markers start with a
    character that is rare in prose ("<", "["), so each pass is a memchr over the text and, at each hit,
    a dict look-up of the next two characters (so "</b>" in prose costs no ``startswith``) before the
    ``startswith`` checks. Markers are at least three characters long."""

    def __init__(self, entries) -> None:
        self.by_first: dict[str, dict[str, list[tuple[str, Any]]]] = {}
        for marker, payload in entries:
            if len(marker) < 3:
                raise ValueError(f"marker {marker!r} is shorter than three characters")
            self.by_first.setdefault(marker[0], {}).setdefault(marker[1:3], []).append((marker, payload))
        for groups in self.by_first.values():
            for group in groups.values():  # longest first: "<think>" must not shadow a longer marker
                group.sort(key=lambda e: -len(e[0]))

    def first(self, text: str, start: int = 0, stop: int | None = None) -> tuple[int, str | None, Any]:
        pos, marker, payload = -1, None, None
        limit = len(text) if stop is None else stop
        for c, groups in self.by_first.items():
            i = text.find(c, start, limit)
            while i != -1:
                group = groups.get(text[i + 1 : i + 3])
                if group:
                    for m, p in group:
                        if text.startswith(m, i):
                            pos, marker, payload, limit = i, m, p, i
                            break
                    if limit == i:
                        break
                i = text.find(c, i + 1, limit)
        return pos, marker, payload


# Families by name, in import order (formats/__init__.py imports them all: the order is detection priority).
# "auto" is what a caller passes for detection; "none" and "api" are split rules, not families.
FORMATS: Registry[Format] = Registry("reasoning format", reserved=("auto",))


def register(fmt: Format) -> Format:
    """Add a family to the registry (by its unique name); returns it, so a module can keep a handle."""
    if fmt.name in ("none", "api"):
        raise ValueError(f"reasoning format name {fmt.name!r} is reserved")
    FORMATS.add(fmt.name, fmt)
    _AUTO.clear()
    return fmt


def get(name: str) -> Format:
    return FORMATS.get(name)


def all_formats() -> list[Format]:
    return FORMATS.values()


_AUTO: dict[str, Any] = {}


def _auto() -> dict[str, Any]:
    """Tables for auto-detection, built once from the registry."""
    if not _AUTO:
        text = [(m, (f, p, m in p.opens)) for f in FORMATS.values() if f.auto and not f.start_only
                for p in f.pairs for m in (*p.opens, *p.closes)]  # fmt: skip
        _AUTO["scan"] = Scanner(text)
        _AUTO["start"] = [(m, f, p) for f in FORMATS.values() if f.auto and f.start_only for p in f.pairs for m in p.opens]
        _AUTO["start_markers"] = tuple(m for m, _, _ in _AUTO["start"])
        _AUTO["custom"] = {f.name for f in FORMATS.values() if type(f).split is not Format.split}
        # By the last three characters (every marker has three; two markers that both end a prompt share
        # them), then by marker, longest first: a few look-ups per prompt. Families in registry order.
        by_marker: dict[str, list[tuple[Format, Pair, bool]]] = {}
        for f in FORMATS.values():
            if type(f).split is Format.split and f.prompt_tail:
                for p in f.pairs:
                    for m in (*p.opens, *p.closes):
                        by_marker.setdefault(m, []).append((f, p, m in p.opens))
        tails: dict[str, list[tuple[str, list[tuple[Format, Pair, bool]]]]] = {}
        for m in sorted(by_marker, key=len, reverse=True):  # "</seed:think>" before a shorter suffix
            tails.setdefault(m[-3:], []).append((m, by_marker[m]))
        _AUTO["tails"] = tails
        _AUTO["prompt"] = [(s, f) for f in FORMATS.values() for s in f.prompt_signatures]
    return _AUTO


def from_prompt(prompt_rendered: str) -> Format | None:
    """The family whose chat-template tokens appear in the rendered prompt, if any."""
    for sig, fmt in _auto()["prompt"]:
        if sig in prompt_rendered:
            return fmt
    return None


def prompt_tail(tail: str, fmt: Format | None) -> tuple[Format, Pair, bool] | None:
    """The marker the rendered prompt ends with (``tail`` is right-stripped): (format, pair, is_open)."""
    for m, entries in (_AUTO or _auto())["tails"].get(tail[-3:], ()):
        if tail.endswith(m):
            for f, p, is_open in entries:
                if fmt is None or f is fmt:
                    return f, p, is_open
    return None


def detect_split(raw: str) -> Split:
    """Split by whichever auto-detected family's marker comes first in ``raw``."""
    tables = _AUTO or _auto()
    head = raw[:64].lstrip()
    if head.startswith(tables["start_markers"]):
        for m, f, p in tables["start"]:
            if head.startswith(m):
                return f.split_at(raw, raw.find(m), m, p, True)
    pos, marker, hit = tables["scan"].first(raw)
    if marker is None:
        return Split("", raw.strip(), "no_thinking", "none", "none")
    fmt, pair, is_open = hit
    if fmt.name in tables["custom"]:  # a family with its own structure (harmony)
        return fmt.split(raw)
    return fmt.split_at(raw, pos, marker, pair, is_open)


_OFF: dict[str, tuple[str, ...]] = {"enable_thinking": (), "thinking": (), "thinking_mode": ("off", "none", "no_think"),
                                    "reasoning_effort": ("none", "no_think")}  # fmt: skip


def thinking_off(kwargs: Mapping[str, Any] | None) -> bool:
    """True when the chat-template switches recorded for a trace turned thinking off."""
    if not kwargs:
        return False
    for key, off in _OFF.items():
        v = kwargs.get(key)
        if isinstance(v, dict):  # {"type": "disabled"} (Anthropic-style)
            v = v.get("type")
        if v is False or (isinstance(v, str) and v.lower() in off + ("disabled",)):
            return True
    return False
