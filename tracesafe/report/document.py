"""The report document: blocks rendered both to Markdown and to self-contained HTML."""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .format import md, one_line


@dataclass
class Doc:
    """Blocks rendered both to Markdown and to HTML, so the two never disagree."""

    title: str
    blocks: list[tuple] = field(default_factory=list)

    def h(self, text: str, level: int = 2):
        self.blocks.append(("h", level, text))

    def p(self, text: str):
        self.blocks.append(("p", text))

    def note(self, text: str, first: bool = False):
        self.blocks.insert(0 if first else len(self.blocks), ("note", text))

    def ul(self, items: list[str]):
        if items:
            self.blocks.append(("ul", items))

    def table(self, df: pd.DataFrame, caption: str = ""):
        if not df.empty:
            self.blocks.append(("table", df, caption))

    def figure(self, png: Path | None, caption: str):
        if png is not None:
            self.blocks.append(("figure", png, caption))

    def to_md(self, base: Path) -> str:
        out = [f"# {md(self.title)}", ""]
        for b in self.blocks:
            kind = b[0]
            if kind == "h":
                out += ["#" * b[1] + " " + b[2], ""]
            elif kind == "p":
                out += [b[1], ""]
            elif kind == "note":
                out += ["> " + b[1], ""]
            elif kind == "ul":
                out += [f"- {i}" for i in b[1]] + [""]
            elif kind == "table":
                df, cap = b[1], b[2]
                if cap:
                    out += [f"*{cap}*", ""]
                cols = [md(c) for c in df.columns]
                out.append("| " + " | ".join(cols) + " |")
                out.append("|" + "|".join("---" for _ in cols) + "|")
                for row in df.itertuples(index=False):
                    out.append("| " + " | ".join(_md_cell(v) for v in row) + " |")
                out.append("")
            elif kind == "figure":
                rel = b[1].relative_to(base).as_posix()
                out += [f"![{b[2]}]({rel})", "", f"*{b[2]}* (vector: `{rel[:-4]}.svg`)", ""]
        return "\n".join(out)

    def to_html(self) -> str:
        parts = [f"<h1>{html.escape(one_line(self.title))}</h1>"]
        for b in self.blocks:
            kind = b[0]
            if kind == "h":
                parts.append(f"<h{b[1]}>{_inline(b[2])}</h{b[1]}>")
            elif kind == "p":
                parts.append(f"<p>{_inline(b[1])}</p>")
            elif kind == "note":
                parts.append(f'<div class="note">{_inline(b[1])}</div>')
            elif kind == "ul":
                parts.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in b[1]) + "</ul>")
            elif kind == "table":
                df, cap = b[1], b[2]
                rows = ["<tr>" + "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns) + "</tr>"]
                for row in df.itertuples(index=False):
                    rows.append("<tr>" + "".join(f"<td>{_inline(_md_cell(v))}</td>" for v in row) + "</tr>")
                capt = f"<caption>{_inline(cap)}</caption>" if cap else ""
                parts.append(f'<div class="tw"><table>{capt}{"".join(rows)}</table></div>')
            elif kind == "figure":
                data = base64.b64encode(b[1].read_bytes()).decode()
                alt = re.sub(r"<[^>]+>", "", _inline(b[2]))
                parts.append(f'<figure><img alt="{alt}" src="data:image/png;base64,{data}">'
                             f"<figcaption>{_inline(b[2])}</figcaption></figure>")
        body = "\n".join(parts)
        return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                f"<title>{html.escape(one_line(self.title))}</title><style>{_css()}</style></head>\n<body>\n{body}\n</body></html>\n")



def _md_cell(v) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "–"
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.3g}"
    return md(v)


_ESCAPED = re.compile(r"\\([!-/:-@\[-`{-~])|&(?:amp|lt|gt);")


def _inline(text: str) -> str:
    """The Markdown of report.md (code, bold, italics, backslash escapes and entities from ``md``) as HTML."""
    held: list[str] = []

    def hold(m: re.Match) -> str:  # escaped characters are text, never markup
        held.append(html.escape(m.group(1) if m.group(1) is not None else html.unescape(m.group(0))))
        return f"\x00{len(held) - 1}\x00"

    s = html.escape(_ESCAPED.sub(hold, text))
    s = re.sub(r"`([^`]+)`", r"<code>\1</code>", s)
    s = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", s)
    s = re.sub(r"(?<![*\w])\*([^*]+)\*(?![*\w])", r"<em>\1</em>", s)
    return re.sub(r"\x00(\d+)\x00", lambda m: held[int(m.group(1))], s)



def _css() -> str:
    from importlib.resources import files

    return "\n" + files(__package__).joinpath("report.css").read_text(encoding="utf-8")
