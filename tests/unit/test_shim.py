"""The job shim: control-character escaping and the files it leaves in the run folder."""

from __future__ import annotations

import gc
import re
import signal
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opensage.runtime.shim import escape_control, run, write_atomic

LINE = re.compile(r"^(\d{13}) (.*)$")


@pytest.fixture(autouse=True)
def _restore_sigterm() -> Iterator[None]:
    """`run` makes the calling process ignore SIGTERM (right for the shim, not for pytest)."""
    previous = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, previous)


def log_lines(run_dir: Path) -> list[str]:
    text = (run_dir / "output.log").read_text(encoding="utf-8")
    assert text.endswith("\n")
    out = []
    for line in text.splitlines():
        match = LINE.match(line)
        assert match, line
        out.append(match.group(2))
    return out


# escape_control -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("a\tb", "a#011b"),
        ("\x00\x01\x1f\x7f", "#000#001#037#177"),
        ("carriage\r", "carriage#015"),
        ("\x0b\x0c", "#013#014"),
        ("keeps\nnewline", "keeps\nnewline"),
        ("plain # text é ☃", "plain # text é ☃"),
        ("", ""),
    ],
)
def test_escape_control(text: str, escaped: str) -> None:
    assert escape_control(text) == escaped


@given(st.text(alphabet=st.characters(blacklist_characters="#", blacklist_categories=("Cs",))))
def test_escaping_removes_control_characters_and_can_be_undone(text: str) -> None:
    escaped = escape_control(text)
    assert all(ch == "\n" or (ord(ch) >= 0x20 and ch != "\x7f") for ch in escaped)
    assert re.sub(r"#([0-7]{3})", lambda m: chr(int(m.group(1), 8)), escaped) == text


def test_write_atomic(tmp_path: Path) -> None:
    target = tmp_path / "exit_code"
    write_atomic(target, "0")
    write_atomic(target, "3")
    assert target.read_text() == "3"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exit_code"]


# run ----------------------------------------------------------------------------------------


def test_run_closes_the_child_pipe(tmp_path: Path) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run(tmp_path, [sys.executable, "-c", "print('x')"])
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []


def test_run_writes_log_exit_code_and_child_pid(tmp_path: Path) -> None:
    program = (
        "import sys\n"
        "print('[0]\\ttrain-rmse:0.5')\n"
        "print('to stderr', file=sys.stderr, flush=True)\n"
        "print('bad bytes:', end=' ', flush=True)\n"
        "sys.stdout.buffer.write(b'\\xff\\n')\n"
        "sys.stdout.write('unterminated')\n"
        "sys.exit(3)\n"
    )
    code = run(tmp_path, [sys.executable, "-c", program])
    assert code == 3
    assert (tmp_path / "exit_code").read_text() == "3"
    assert int((tmp_path / "child.pid").read_text()) > 0
    lines = log_lines(tmp_path)
    assert lines[0] == "[0]#011train-rmse:0.5"
    assert sorted(lines[1:]) == sorted(["to stderr", "bad bytes: \ufffd", "unterminated"])
    assert not list(tmp_path.glob("*.tmp"))


def test_run_appends_to_an_existing_log(tmp_path: Path) -> None:
    (tmp_path / "output.log").write_text("1700000000000 earlier\n")
    run(tmp_path, [sys.executable, "-c", "print('later')"])
    assert log_lines(tmp_path) == ["earlier", "later"]
    assert (tmp_path / "exit_code").read_text() == "0"


def test_run_records_a_signal_death_as_128_plus_signal(tmp_path: Path) -> None:
    program = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
    assert run(tmp_path, [sys.executable, "-c", program]) == -signal.SIGKILL
    assert (tmp_path / "exit_code").read_text() == str(128 + signal.SIGKILL)


def test_run_of_a_missing_program_exits_127(tmp_path: Path) -> None:
    assert run(tmp_path, [str(tmp_path / "no-such-program")]) == 127
    assert (tmp_path / "exit_code").read_text() == "127"
    assert not (tmp_path / "child.pid").exists()
    (line,) = log_lines(tmp_path)
    assert "No such file or directory" in line


def test_shim_as_a_module(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "opensage.runtime.shim", str(run_dir), "--", sys.executable, "-c",
         "print('x\\ty'); raise SystemExit(3)"],
        capture_output=True,
        check=False,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 0  # the shim's own status; the program's is in the file
    assert (run_dir / "exit_code").read_text() == "3"
    assert log_lines(run_dir) == ["x#011y"]


def test_shim_usage_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "opensage.runtime.shim", "only-a-dir"],
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 1
    assert b"usage: python -m opensage.runtime.shim" in result.stderr
