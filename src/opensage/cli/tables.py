"""Plain-text tables for the CLI: what `docker images` and `kubectl get` print."""

from __future__ import annotations

from collections.abc import Iterable


def table(headers: list[str], rows: Iterable[list[str]]) -> None:
    """Left-aligned columns two spaces apart, sized to their widest cell."""
    lines = [headers, *rows] if headers else list(rows)
    widths = [max(len(row[i]) for row in lines) for i in range(len(lines[0]))] if lines else []
    for row in lines:
        print(
            "  ".join(f"{cell:<{width}}" for cell, width in zip(row, widths, strict=True)).rstrip()
        )
