"""Writing one benchmark's section of benchmarks/RESULTS.md, leaving every other section as it is
(each script owns the section under its own title; hand-written notes have titles of their own)."""

from __future__ import annotations

import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def replace_section(title: str, section: str, results: Path = RESULTS) -> None:
    """Put `section` (which starts with the line `title`) in place of the section with that
    title, or at the end when there is none yet."""
    text = results.read_text() if results.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^{re.escape(title)}\n.*?(?=^## |\Z)", re.M | re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section.rstrip() + "\n\n", text, count=1).rstrip() + "\n"
    else:
        text = text.rstrip() + "\n\n" + section.rstrip() + "\n"
    results.write_text(text)
    print(f"wrote {results}")
