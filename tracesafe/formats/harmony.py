"""gpt-oss harmony channels: ``<|channel|>analysis<|message|>…<|end|>`` is thinking, every other message
(``final``, ``commentary`` tool calls and preambles, built-in tool calls ``analysis to=python``) is
answer, in order. Header text (roles, channel
names, ``to=``/``<|constrain|>`` annotations) belongs to neither; any other text is kept: before the
first header it is thinking, between messages it joins the side of the message before it."""

from __future__ import annotations

from ._base import Format, Pair, Scanner, Split, register

CHANNEL = "<|channel|>"
MESSAGE = "<|message|>"
START = "<|start|>"
ENDS = ("<|end|>", "<|return|>", "<|call|>")
# What ends a message's text: an end token, or the next header when the message was cut. One pass over
# the text (a memchr for "<"), where a search for the next header and then for an end token took two.
_NEXT = Scanner((t, None) for t in (CHANNEL, *ENDS))


class Harmony(Format):
    @property
    def markers(self) -> tuple[str, ...]:
        return (CHANNEL, MESSAGE, START, *ENDS, "<|constrain|>")

    def split(self, raw: str, known: bool = False) -> Split:
        c = raw.find(CHANNEL)
        if c == -1:
            return Split("", raw.strip(), "no_thinking", "none", self.name)
        thinking: list[str] = []
        answer: list[str] = []
        _keep(thinking, _drop_role(raw[:c]))
        while c != -1:
            m = raw.find(MESSAGE, c)
            if m == -1:  # cut inside a header: no message text to keep
                break
            # Header: "<|channel|>final <|constrain|>json<|message|>": the channel is the first word; a
            # recipient ("analysis to=python", a built-in tool) makes the message a tool call, not thought.
            header = raw[c + len(CHANNEL) : m]
            channel = header.split("<", 1)[0].split(" ", 1)[0].strip()
            side = thinking if channel == "analysis" and " to=" not in header else answer
            body = m + len(MESSAGE)
            end, token, _ = _NEXT.first(raw, body)
            if token is None or token == CHANNEL:  # no end token: the message runs to the next header (it was cut) or the end
                c = end
                _keep(side, _drop_role(raw[body : end if end != -1 else len(raw)]))
                continue
            c = raw.find(CHANNEL, end + len(token))
            stop = c if c != -1 else len(raw)
            _keep(side, raw[body:end])
            _keep(side, _drop_role(raw[end + len(token) : stop]))
        if not answer:
            status = "unterminated" if thinking else "no_thinking"
            return Split("\n".join(thinking), "", status, "harmony", self.name)
        return Split("\n".join(thinking), "\n".join(answer), "complete" if thinking else "no_thinking", "harmony", self.name)


def _drop_role(text: str) -> str:
    """Text before a header without its ``<|start|>role`` part."""
    k = text.rfind(START)
    return text[:k] if k != -1 and "<" not in text[k + len(START) :] else text


def _keep(pieces: list[str], text: str) -> None:
    text = text.strip()
    if text:
        pieces.append(text)


# The pair only lets auto-detection find the channel header; Harmony.split does the parsing.
register(Harmony("harmony", "gpt-oss harmony channels: analysis = thinking, final/commentary = answer",
                 pairs=(Pair((CHANNEL,), ()),), prompt_signatures=("<|start|>assistant",), vllm="openai_gptoss"))  # fmt: skip
