"""The README and the docs render as written: every table row a reader sees is in a table, with
as many cells as its header (a blank line once split the README's Pages table in two)."""
import re

import pytest
from markdown_it import MarkdownIt

from conftest import ROOT

DOCS = sorted([ROOT / "README.md", ROOT / "SECURITY.md", *(ROOT / "docs").glob("*.md")])
CELL_SPLIT = re.compile(r"(?<!\\)\|")


def _cells(line: str) -> int:
    code_free = re.sub(r"`[^`]*`", "code", line.strip())  # a pipe inside `code` is not a cell border
    return len(CELL_SPLIT.split(code_free.strip("|")))


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_every_table_row_renders_in_a_table_with_its_headers_cells(path):
    text = path.read_text()
    lines = text.split("\n")
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    in_table, fenced = set(), set()
    for t in tokens:
        if t.type == "table_open":
            start, end = t.map
            in_table |= set(range(start, end))
            header = _cells(lines[start])
            for n in range(start, end):
                assert _cells(lines[n]) == header, f"{path.name}:{n + 1} has {_cells(lines[n])} cells, not {header}"
        elif t.type in ("fence", "code_block"):
            fenced |= set(range(*t.map))
    stray = [n + 1 for n, line in enumerate(lines)
             if line.startswith("|") and n not in in_table and n not in fenced]
    assert not stray, f"{path.name}: lines {stray} look like table rows but render as text"
