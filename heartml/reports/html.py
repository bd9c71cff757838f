"""Static HTML for ZenML dashboard visualizations and MLflow artifacts.

The dashboard shows HTML in a sandboxed iframe that blocks scripts, so every page here is plain markup with inline
CSS: tables, and bars drawn as sized <div>s. Nothing here emits <script>.
"""

from __future__ import annotations

import html
import math
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence

STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:16px;color:#1f2933;font-size:14px}
h1{font-size:20px;margin:0 0 4px} h2{font-size:16px;margin:18px 0 6px} p.note{color:#52606d;margin:2px 0 10px}
p.key{margin:2px 0 10px}
table{border-collapse:collapse;margin:6px 0 14px}
th,td{border-bottom:1px solid #d9e2ec;padding:4px 10px;text-align:right;vertical-align:middle}
th{background:#f0f4f8;font-weight:600} th:first-child,td:first-child{text-align:left}
.text{text-align:left} tr.highlight td{background:#e3f8ff;font-weight:600}
.track{position:relative;width:220px;height:14px;background:#f5f7fa}
.axis{position:absolute;left:50%;top:0;bottom:0;border-left:1px solid #9aa5b1}
.bar{position:absolute;top:2px;height:10px}
.up{background:#d64545} .down{background:#3a7bd5} .plain{background:#486581}
.verdict-ok{color:#207227;font-weight:600} .verdict-bad{color:#b42318;font-weight:600}
details{margin:4px 0;border:1px solid #d9e2ec;border-radius:4px;padding:4px 8px}
summary{cursor:pointer}
"""


def escape(value: Any) -> str:
    return html.escape(str(value), quote=True)


def page(title: str, *sections: str) -> str:
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'>"
            f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
            f"<h1>{escape(title)}</h1>{''.join(sections)}</body></html>")


def fmt(value: Any, digits: int = 3) -> str:
    if isinstance(value, bool) or value is None:
        return "" if value is None else ("yes" if value else "")
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def table(
    rows: Sequence[Mapping[str, Any]],
    columns: Optional[Sequence[str]] = None,
    headers: Optional[Mapping[str, str]] = None,
    highlight: Callable[[Mapping[str, Any]], bool] = lambda row: False,
    cell: Optional[Dict[str, Callable[[Any], str]]] = None,
) -> str:
    """A table; `cell` maps a column to a function returning ready markup (otherwise values are escaped)."""
    columns = list(columns or (rows[0].keys() if rows else []))
    headers = headers or {}
    cell = cell or {}
    text_columns = {c for c in columns if rows and isinstance(rows[0].get(c), str)}
    head = "".join(f"<th{' class=text' if c in text_columns else ''}>{escape(headers.get(c, c))}</th>"
                   for c in columns)
    body = []
    for row in rows:
        cells = []
        for c in columns:
            value = row.get(c)
            if c in cell:
                cells.append(f"<td>{cell[c](value)}</td>")
            else:
                css = " class='text'" if isinstance(value, str) else ""
                cells.append(f"<td{css}>{escape(fmt(value))}</td>")
        css = " class='highlight'" if highlight(row) else ""
        body.append(f"<tr{css}>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def signed_bar(value: float, scale: float) -> str:
    """A bar right of the centre line for positive values, left for negative; `scale` is the largest |value|."""
    share = 0.0 if scale <= 0 else min(abs(value) / scale, 1.0) * 50
    side = f"left:50%;width:{share:.1f}%" if value >= 0 else f"left:{50 - share:.1f}%;width:{share:.1f}%"
    css = "up" if value >= 0 else "down"
    return f"<div class='track'><div class='axis'></div><div class='bar {css}' style='{side}'></div></div>"


def plain_bar(value: float, scale: float) -> str:
    share = 0.0 if scale <= 0 else min(abs(value) / scale, 1.0) * 100
    return f"<div class='track'><div class='bar plain' style='left:0;width:{share:.1f}%'></div></div>"


def paragraph(text: str, css: str = "note") -> str:
    return f"<p class='{css}'>{escape(text)}</p>"


def heading(text: str) -> str:
    return f"<h2>{escape(text)}</h2>"


def details(summary: str, body: str, open_: bool = False) -> str:
    """A collapsible block; <details> needs no script."""
    return f"<details{' open' if open_ else ''}><summary>{escape(summary)}</summary>{body}</details>"


def signed(value: float, digits: int = 3) -> str:
    """A number with its sign always shown (+0.120, -0.045): for effects, where the direction is the point."""
    return "–" if value is None or math.isnan(value) else f"{value:+.{digits}f}"


def interval(low: float, high: float, digits: int = 3) -> str:
    return f"{low:.{digits}f} – {high:.{digits}f}"


def definition_rows(items: Iterable[tuple]) -> List[Dict[str, Any]]:
    return [{"name": name, "value": value} for name, value in items]
