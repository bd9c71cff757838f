"""Read a rendered page as a person sees it: its tables as rows of cell text, which rows are highlighted, which
blocks are unfolded. Tests assert on these, not on exact markup."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import List


@dataclass
class PageRow:
    cells: List[str]
    highlighted: bool


@dataclass
class Page:
    tables: List[List[PageRow]] = field(default_factory=list)
    open_details: int = 0
    details: int = 0
    scripts: int = 0
    text: str = ""

    def rows(self) -> List[List[str]]:
        """Every row of every table, as cell texts."""
        return [row.cells for table in self.tables for row in table]

    def highlighted(self) -> List[List[str]]:
        return [row.cells for table in self.tables for row in table if row.highlighted]


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.page = Page()
        self._cell: List[str] | None = None
        self._texts: List[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "table":
            self.page.tables.append([])
        elif tag == "tr" and self.page.tables:
            self.page.tables[-1].append(PageRow([], "highlight" in (attributes.get("class") or "").split()))
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "details":
            self.page.details += 1
            self.page.open_details += "open" in attributes
        elif tag == "script":
            self.page.scripts += 1

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self.page.tables and self.page.tables[-1]:
            self.page.tables[-1][-1].cells.append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data):
        self._texts.append(data)
        if self._cell is not None:
            self._cell.append(data)


def read_page(markup: str) -> Page:
    reader = _Reader()
    reader.feed(markup)
    reader.page.text = " ".join("".join(reader._texts).split())
    return reader.page
