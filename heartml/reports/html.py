"""Static HTML for ZenML dashboard visualizations and MLflow artifacts, rendered from the Jinja2 templates in
`heartml/reports/templates/` (one stylesheet, `style.css`, inlined into every page).

The dashboard shows HTML in a sandboxed iframe that blocks scripts, so every page is plain markup with inline CSS:
tables, and bars drawn as sized <div>s; no template emits <script>. Python decides what a cell says (numbers
formatted here, once); the templates decide the markup. Autoescaping is on: values are always text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

_ENVIRONMENT = Environment(
    loader=PackageLoader("heartml.reports", "templates"),
    autoescape=select_autoescape(["html", "css"], default_for_string=True),
    undefined=StrictUndefined,  # a missing value is a bug in the page's context, not an empty cell
    trim_blocks=True,
    lstrip_blocks=True,
)


def render(template: str, **context: Any) -> str:
    """The page `template` (a file in templates/) with `context`."""
    return _ENVIRONMENT.get_template(template).render(**context)


@dataclass
class Cell:
    """One table cell: `text`, or a bar (`kind` signed_bar / bar / share) with its geometry in percent."""

    text: str = ""
    kind: str = "text"
    css: str = ""
    value: float = 0.0
    left: float = 0.0
    width: float = 0.0


@dataclass
class Column:
    header: str
    text: bool = False  # left-aligned (a text column)


@dataclass
class Row:
    cells: List[Cell]
    highlight: bool = False


@dataclass
class Table:
    columns: List[Column]
    rows: List[Row] = field(default_factory=list)


def fmt(value: Any, digits: int = 3) -> str:
    if isinstance(value, bool) or value is None:
        return "" if value is None else ("yes" if value else "")
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def text_cell(value: Any) -> Cell:
    return Cell(text=fmt(value), css="text" if isinstance(value, str) else "")


def signed_bar(value: float, scale: float) -> Cell:
    """A bar right of the centre line for positive values, left for negative; `scale` is the largest |value|."""
    share = 0.0 if scale <= 0 else min(abs(value) / scale, 1.0) * 50
    return Cell(kind="signed_bar", value=value, left=50.0 if value >= 0 else 50 - share, width=share)


def plain_bar(value: float, scale: float, css: str = "plain") -> Cell:
    share = 0.0 if scale <= 0 else min(abs(value) / scale, 1.0) * 100
    return Cell(kind="bar", value=value, width=share, css=css)


def share_bar(share: float, css: str = "plain") -> Cell:
    """A short bar for a share of 0..1, with the share as a percentage beside it."""
    return Cell(kind="share", value=share, width=min(max(share, 0.0), 1.0) * 100, text=f"{share:.1%}", css=css)


def signed(value: Optional[float], digits: int = 3) -> str:
    """A number with its sign always shown (+0.120, -0.045): for effects, where the direction is the point."""
    return "–" if value is None or math.isnan(value) else f"{value:+.{digits}f}"


def signed_cell(value: Optional[float]) -> Cell:
    return Cell(text=signed(value))


def table(
    rows: Sequence[Mapping[str, Any]],
    columns: Optional[Sequence[str]] = None,
    headers: Optional[Mapping[str, str]] = None,
    highlight: Callable[[Mapping[str, Any]], bool] = lambda row: False,
    cell: Optional[Dict[str, Callable[[Any], Cell]]] = None,
) -> Table:
    """A table of `rows` (dicts); `cell` maps a column to a function making its cells (default: formatted text)."""
    columns = list(columns or (rows[0].keys() if rows else []))
    headers = headers or {}
    cell = cell or {}
    built = [Row(cells=[cell.get(c, text_cell)(row.get(c)) for c in columns], highlight=bool(highlight(row)))
             for row in rows]
    # A column reads left-aligned when its cells do (text, or a bar with its share beside it).
    aligned_left = [bool(built) and (built[0].cells[i].css == "text" or built[0].cells[i].kind == "share")
                    for i in range(len(columns))]
    return Table(columns=[Column(header=headers.get(c, c), text=left) for c, left in zip(columns, aligned_left)],
                 rows=built)


def interval(low: float, high: float, digits: int = 3) -> str:
    return f"{low:.{digits}f} – {high:.{digits}f}"


def definition_rows(items: Iterable[tuple]) -> List[Dict[str, Any]]:
    return [{"name": name, "value": value} for name, value in items]
