"""Pages and figures rendered once per process for the same content: a step logs its report's page and PNG to
MLflow, then the report's materializer writes the same ones to the artifact store for the dashboard. Drawing with
matplotlib is most of that time (each of LIME's, SHAP's and the model card's: 0.2-0.4 s a render)."""

from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar

from matplotlib.figure import Figure
from pydantic import BaseModel

from heartml.reports.plots import png_bytes

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


class _ByContent:
    """A report as a cache key: equal when its type and JSON are (the rendering functions are pure)."""

    def __init__(self, data: BaseModel):
        self.data, self.key = data, (type(data), data.model_dump_json())

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _ByContent) and self.key == other.key


@functools.lru_cache(maxsize=16)
def _rendered(render: Callable[[Any], Any], content: _ByContent) -> Any:
    return render(content.data)


def once(render: Callable[[M], T], data: M) -> T:
    """`render(data)`, computed once per process for a report of the same type and content."""
    return _rendered(render, _ByContent(data))


@functools.lru_cache(maxsize=16)
def _png(figure: Callable[[Any], Figure], content: _ByContent) -> bytes:
    return png_bytes(figure(content.data))


def png_once(figure: Callable[[M], Figure], data: M) -> bytes:
    """`figure(data)` as PNG, drawn once per process for a report of the same type and content."""
    return _png(figure, _ByContent(data))
