"""The documentation's own contracts: the README quick start that .ci/run executes, and links that resolve."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
QUICK_START = ["bash scripts/setup.sh && .venv/bin/tracesafe demo -o demo-report",
               "bash scripts/setup.sh --dev && .venv/bin/python -m pytest -n 2 --dist worksteal"]  # fmt: skip
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    fenced, out = False, set()
    for line in path.read_text().splitlines():
        fenced ^= line.startswith("```")
        if not fenced and (m := re.match(r"#{1,6} (.*)", line)):
            out.add(_slug(m.group(1)))
    return out


def _prose(path: Path) -> str:
    """The text outside fenced blocks and code spans, where a link is a link."""
    text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.M | re.S)
    return re.sub(r"`[^`\n]*`", "", text)


def test_quick_start_is_the_two_commands_ci_runs():
    """.ci/run executes line 2 of the README's first Quick start block; line 1 is the no-GPU demo."""
    ci = (REPO / ".ci/run").read_text()
    script = ci.split("<<'PY'\n")[1].split("\nPY\n")[0]
    r = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == QUICK_START[1]
    readme = (REPO / "README.md").read_text()
    block = readme.split("## Quick start\n\n```bash\n")[1].split("```")[0]
    assert block.splitlines() == QUICK_START
    assert readme.index("## Quick start") < 1500  # on the first screen


@pytest.mark.parametrize("doc", DOCS, ids=[d.name for d in DOCS])
def test_relative_links_resolve(doc):
    bad = []
    for target in LINK.findall(_prose(doc)):
        if re.match(r"[a-z]+:", target):
            continue  # an absolute URL: not checked offline
        path, _, anchor = target.partition("#")
        dest = (doc.parent / path).resolve() if path else doc
        if not dest.exists():
            bad.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            bad.append(f"{target}: no heading with that anchor")
    assert not bad, f"{doc.relative_to(REPO)}: " + "; ".join(bad)


def test_every_doc_is_linked_from_the_readme():
    readme = (REPO / "README.md").read_text()
    assert [d.name for d in DOCS[1:] if f"](docs/{d.name}" not in readme] == []
