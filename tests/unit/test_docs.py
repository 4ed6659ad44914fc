"""The README and docs/ link to each other: every relative link names a file that exists,
and every #anchor a heading of that page (as GitHub spells heading anchors)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^(    |\t|```)")


def _prose(text: str) -> str:
    """The page without code blocks (indented or fenced) and inline code."""
    lines, fenced = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
            continue
        if fenced or _FENCE.match(line):
            continue
        lines.append(re.sub(r"`[^`]*`", "", line))
    return "\n".join(lines)


def anchors(text: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces become hyphens."""
    found: set[str] = set()
    for line in text.splitlines():
        m = re.match(r"^#{1,6} (.+)$", line)
        if m:
            slug = re.sub(r"[^\w\- ]", "", m[1].strip().lower()).replace(" ", "-")
            found.add(slug)
    return found


def test_anchor_spelling():
    assert anchors("## Mutual TLS (CIS 2.7)\n### Drift: check, correct, schedule") == {
        "mutual-tls-cis-27",
        "drift-check-correct-schedule",
    }


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    problems = []
    for target in _LINK.findall(_prose(page.read_text())):
        if re.match(r"^[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            problems.append(f"{target}: no such file")
        elif anchor and anchor not in anchors(dest.read_text()):
            problems.append(f"{target}: no heading #{anchor} in {dest.relative_to(ROOT)}")
    assert not problems, problems


def test_readme_stays_short():
    assert len((ROOT / "README.md").read_bytes()) <= 8 * 1024, "move detail into docs/"
