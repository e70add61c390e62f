"""Text with marked spans, as segments a template renders with autoescaping (``<mark>`` around the marked ones).

User text never passes through ``|safe``: the template writes ``{{ segment.text }}`` inside or outside a
``<mark>`` it controls, so a snippet containing markup shows that markup as text.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Segment:
    text: str
    mark: bool = False


def _clean_spans(spans: Iterable[Sequence[Any]], length: int) -> list[tuple[int, int]]:
    """Valid, sorted, merged spans inside ``[0, length]``; anything malformed is ignored, not trusted."""
    cleaned = []
    for span in spans or ():
        try:
            start, end = int(span[0]), int(span[1])
        except (TypeError, ValueError, IndexError):
            continue
        start, end = max(0, start), min(length, end)
        if start < end:
            cleaned.append((start, end))
    cleaned.sort()
    merged: list[tuple[int, int]] = []
    for start, end in cleaned:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def highlight_segments(text: str, spans: Iterable[Sequence[Any]] | None) -> list[Segment]:
    """``text`` cut into plain and marked segments at ``spans`` ([[start, end], …], 0-based, end exclusive)."""
    text = text or ""
    segments: list[Segment] = []
    cursor = 0
    for start, end in _clean_spans(spans or (), len(text)):
        if start > cursor:
            segments.append(Segment(text[cursor:start]))
        segments.append(Segment(text[start:end], mark=True))
        cursor = end
    if cursor < len(text) or not segments:
        segments.append(Segment(text[cursor:]))
    return segments


@dataclass(frozen=True)
class ErrorMarkup:
    """A query with its offending span, for the editor: before · bad · after. ``at_end`` when the problem is
    that the query stopped too early (there is no character to underline, so the template shows a marker)."""

    before: str
    bad: str
    after: str
    at_end: bool
    position: int  # 1-based, as people count characters


def error_markup(query: str, position: int, end: int | None) -> ErrorMarkup:
    position = max(0, min(int(position or 0), len(query)))
    end = position + 1 if end is None else max(position, min(int(end), len(query)))
    bad = query[position:end]
    return ErrorMarkup(
        before=query[:position], bad=bad, after=query[end:], at_end=not bad.strip() and position >= len(query.rstrip()),
        position=position + 1,
    )  # fmt: skip
