"""The documentation's links: README.md and docs/**/*.md link only to files and #anchors that exist (anchors as
MkDocs makes them from headings), the docs pages stay inside docs/ (what MkDocs publishes), every page is in the
mkdocs.yml nav, and nothing points at ../shared, which users of the project do not have."""
from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})[^\n]*\n.*?^ {0,3}\1[^\n]*$", re.M | re.S)
CODE_SPAN = re.compile(r"(`+)(?:[^`\n]|\n(?![ \t]*\n))+?\1")
# [text](target "title") and ![alt](target); the text may hold one level of brackets.
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
REFERENCE_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)", re.M)
HTML_LINK = re.compile(r"<(?:a|img)\b[^>]*?\b(?:href|src)=[\"']([^\"']+)[\"']", re.I)
HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$", re.M)
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)  # http:, https:, mailto: ...


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def _blank(match: re.Match) -> str:
    return re.sub(r"[^\n]", " ", match.group(0))


def _without_code(text: str) -> str:
    """Blank out fenced code blocks and code spans (keeping the line count), where brackets are no links."""
    return CODE_SPAN.sub(_blank, FENCE.sub(_blank, text))


def heading_text(raw: str) -> str:
    """The text of a heading as the table of contents sees it: no code marks, emphasis or link targets."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", raw)
    text = re.sub(r"<[^>]+>", "", text)
    text = text.replace("`", "")
    return re.sub(r"(\*\*|__|\*|(?<!\w)_(?=\S)|(?<=\S)_(?!\w))", "", text)


def slugify(text: str) -> str:
    """Python-Markdown's toc slugify, which MkDocs uses for heading ids."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(path: Path) -> set[str]:
    """The ids MkDocs gives the headings of a page: their slugs, a repeated one suffixed _1, _2, ..."""
    found: set[str] = set()
    for match in HEADING.finditer(FENCE.sub(_blank, path.read_text(encoding="utf-8"))):
        slug = base = slugify(heading_text(match.group(2)))
        number = 0
        while slug in found:
            number += 1
            slug = f"{base}_{number}"
        found.add(slug)
    return found


def link_targets(text: str) -> list[tuple[int, str]]:
    """Return (line, target) of every inline, reference-definition and HTML link outside code."""
    plain = _without_code(text)
    targets = []
    for pattern in (INLINE_LINK, REFERENCE_DEFINITION, HTML_LINK):
        for match in pattern.finditer(plain):
            target = match.group(1).strip("<>")
            targets.append((plain.count("\n", 0, match.start()) + 1, target))
    return sorted(targets)


def link_problems(path: Path, root: Path = ROOT, docs: Path = DOCS) -> list[str]:
    """Every broken internal link of one Markdown file, as 'file:line: target: what is wrong'."""
    text = path.read_text(encoding="utf-8")
    where = path.relative_to(root).as_posix()
    problems = [f"{where}:{text.count(chr(10), 0, match.start()) + 1}: mentions ../shared, which users of the "
                "project do not have" for match in re.finditer(r"\.\./shared\b", text)]
    in_docs = path.is_relative_to(docs)
    for line, target in link_targets(text):
        if EXTERNAL.match(target):
            continue
        prefix = f"{where}:{line}: {target}:"
        file_part, _, anchor = target.partition("#")
        file_part = unquote(file_part.split("?", 1)[0])
        if file_part.startswith("/"):
            problems.append(f"{prefix} an absolute path; link relative to the file")
            continue
        destination = (path.parent / file_part).resolve() if file_part else path
        if not destination.is_relative_to(root):
            problems.append(f"{prefix} points outside the repository")
            continue
        if in_docs and not destination.is_relative_to(docs):
            problems.append(f"{prefix} points outside docs/, which MkDocs does not publish")
            continue
        if not destination.exists():
            problems.append(f"{prefix} no such file")
            continue
        if anchor and destination.suffix == ".md" and anchor not in anchors(destination):
            problems.append(f"{prefix} {destination.relative_to(root).as_posix()} has no heading with the "
                            f"anchor #{anchor}")
    return problems


@pytest.mark.parametrize("path", markdown_files(), ids=lambda path: path.relative_to(ROOT).as_posix())
def test_internal_links_resolve(path: Path) -> None:
    assert link_problems(path) == []


def test_every_page_is_in_the_nav_and_every_nav_entry_exists() -> None:
    nav = set(re.findall(r"^\s*-\s+(?:[^:\n]+:\s+)?(\S+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(), re.M))
    pages = {path.relative_to(DOCS).as_posix() for path in DOCS.rglob("*.md")}
    assert sorted(nav - pages) == [], "nav entries without a page"
    assert sorted(pages - nav) == [], "pages missing from the nav"


def test_the_readme_stays_a_front_page() -> None:
    assert len((ROOT / "README.md").read_bytes()) < 10_000


def test_the_checker_finds_broken_links(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    (docs / "img").mkdir(parents=True)
    (docs / "img" / "shot.png").write_bytes(b"")
    (tmp_path / "bench.py").write_text("")
    (docs / "other.md").write_text("# Other page\n\n## Plant time and calendars\n\n## Notes\n\n## Notes\n\n"
                                   "### Command line (`FLASK_APP=wsgi`, inside `.venv`)\n")
    page = docs / "page.md"
    page.write_text(
        "# Page\n\n## Section *one*\n\n"
        "[ok](other.md) [ok](other.md#plant-time-and-calendars) [ok](other.md#notes_1) [ok](#section-one)\n"
        "[ok](other.md#command-line-flask_appwsgi-inside-venv) ![ok](img/shot.png) [ok](https://example.com/x)\n"
        "`[code, not a link](missing.md)`\n\n```\n[in a fence](missing.md)\n```\n"
        "[bad](missing.md) [bad](other.md#no-such-heading) [bad](#nowhere) ![bad](img/none.png)\n"
        "[bad](../bench.py) [bad](../../outside.md) [bad](/docs/other.md) see ../shared/notes\n"
        "[bad][ref]\n\n[ref]: gone.md\n")
    problems = link_problems(page, root=tmp_path, docs=docs)
    assert sorted(problem.split(": ", 1)[1] for problem in problems) == sorted([
        "mentions ../shared, which users of the project do not have",
        "missing.md: no such file",
        "other.md#no-such-heading: docs/other.md has no heading with the anchor #no-such-heading",
        "#nowhere: docs/page.md has no heading with the anchor #nowhere",
        "img/none.png: no such file",
        "../bench.py: points outside docs/, which MkDocs does not publish",
        "../../outside.md: points outside the repository",
        "/docs/other.md: an absolute path; link relative to the file",
        "gone.md: no such file",
    ])
