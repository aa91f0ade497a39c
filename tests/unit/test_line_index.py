"""The log line index: reads only new lines, never a half-written one, and notices a new file."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opensage.control.logs import LineIndex, _events


def test_index_grows_with_the_file_and_skips_a_partial_line(tmp_path: Path) -> None:
    path = tmp_path / "output.log"
    path.write_text("1 first\n2 second\n3 par")
    index = LineIndex(path.stat().st_ino)
    index.refresh(path)
    assert index.count == 2
    assert [e["message"] for e in index.read(path, 0, 10)] == ["first", "second"]
    with path.open("a") as f:
        f.write("tial\n4 fourth\n")
    index.refresh(path)
    assert index.count == 4
    assert index.read(path, 2, 4) == [
        {"timestamp": 3, "message": "partial", "ingestionTime": 3},
        {"timestamp": 4, "message": "fourth", "ingestionTime": 4},
    ]
    assert index.read(path, 4, 9) == []
    assert index.read(path, -1, 1) == [{"timestamp": 1, "message": "first", "ingestionTime": 1}]


LINE = st.text(st.characters(blacklist_characters="\n", blacklist_categories=("Cs",)), max_size=20)


@given(lines=st.lists(LINE), cut=st.integers(min_value=0, max_value=50))
def test_index_reads_what_a_full_parse_reads(
    tmp_path_factory: pytest.TempPathFactory, lines: list[str], cut: int
) -> None:
    """Lines may hold any character but \n (U+2028, \x85, \r...): only \n ends a line."""
    path = tmp_path_factory.mktemp("line-index") / "output.log"
    text = "".join(f"{i} {line}\n" for i, line in enumerate(lines)).encode()
    path.write_bytes(text[:cut])  # built in two steps: the index must pick up where it stopped
    index = LineIndex(0)
    index.refresh(path)
    path.write_bytes(text)
    index.refresh(path)
    assert index.count == len(lines)
    assert [e["message"] for e in index.read(path, 0, index.count)] == lines
    assert index.read(path, 0, index.count) == _events(path)
