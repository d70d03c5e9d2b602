"""Every relative link in README.md and docs/**/*.md resolves: the file (or folder) exists and, where
the link names an #anchor in a markdown file, that file has a heading with that anchor."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

#: [text](target) and ![alt](target); the target ends at whitespace (an optional "title" follows).
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
#: [label]: target (reference definitions).
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.MULTILINE)
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # http:, https:, mailto:, ...


def prose(text: str) -> str:
    """The markdown without fenced code blocks and inline code (links there are not links)."""
    text = re.sub(r"^(```|~~~).*?^\1[^\n]*$", "", text, flags=re.MULTILINE | re.DOTALL)
    return re.sub(r"(`+)(?:(?!\1).)+?\1", "", text, flags=re.DOTALL)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, markup and punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of a markdown file's headings (a repeated heading gets -1, -2, ... as on GitHub)."""
    seen: dict[str, int] = {}
    out = set()
    for line in prose(path.read_text()).splitlines():
        m = re.match(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        base = slug(m.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def links(path: Path) -> list[str]:
    text = prose(path.read_text())
    return LINK.findall(text) + REFERENCE.findall(text)


def broken_links(page: Path, root: Path = ROOT) -> list[str]:
    """The relative links of `page` that do not resolve, each with the reason (paths from `root`)."""
    bad = []
    for target in links(page):
        if EXTERNAL.match(target):
            continue
        path_part, _, anchor = target.partition("#")
        dest = (page.parent / path_part).resolve() if path_part else page
        if not dest.exists():
            bad.append(f"{target}: no such file {os.path.relpath(dest, root)}")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            bad.append(f"{target}: no heading with anchor #{anchor} in {os.path.relpath(dest, root)}")
    return bad


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_relative_link_resolves(page):
    assert broken_links(page) == []


def test_the_checker_sees_links_anchors_and_what_is_not_a_link(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text(
        "# The proposal's readings, side by side\n\n## Speed (scripts/x.py)\n"
    )
    page = tmp_path / "README.md"
    page.write_text(
        "# Top\n\n## Top\n\n"
        "[ok](docs/a.md#the-proposals-readings-side-by-side) [ok](docs/a.md#speed-scriptsxpy) [ok](#top-1)\n"
        "![img](docs/missing.png) [bad](docs/a.md#nothing) [bad](#nowhere) [web](https://example.org/x)\n"
        "`[code](docs/missing.md)`\n\n```\n[fenced](docs/missing.md)\n```\n\n[ref]: docs/gone.md\n"
    )
    found = broken_links(page, root=tmp_path)
    assert [b.split(":")[0] for b in found] == [
        "docs/missing.png",
        "docs/a.md#nothing",
        "#nowhere",
        "docs/gone.md",
    ]


def test_the_readme_is_a_guide_of_at_most_400_lines():
    # Issue 21: the README guides and links; the reference lives in docs/.
    assert len((ROOT / "README.md").read_text().splitlines()) <= 400
