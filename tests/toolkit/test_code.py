"""Getting the user's code into the code dir, and how its entry point is run."""

from __future__ import annotations

import io
import sys
import tarfile
from pathlib import Path

import pytest

from opensage.toolkit.entry_point import EntryPointType, command, entry_point_type, python_path
from opensage.toolkit.errors import ClientError
from opensage.toolkit.files import prepare_code, safe_extract


def make_tarball(
    path: Path, members: dict[str, bytes], links: dict[str, str] | None = None
) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return path


def test_pre_extracted_code_dir_is_used_as_is(tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "train.py").write_text("print('hi')")
    how = prepare_code("s3://bucket/never/downloaded.tar.gz", code, {})
    assert "already" in how
    assert [p.name for p in code.iterdir()] == ["train.py"]


def test_local_tarball_is_extracted(tmp_path: Path) -> None:
    tarball = make_tarball(
        tmp_path / "sourcedir.tar.gz", {"train.py": b"print(1)\n", "pkg/util.py": b"X = 1\n"}
    )
    code = tmp_path / "code"
    prepare_code(str(tarball), code, {})
    assert (code / "train.py").read_bytes() == b"print(1)\n"
    assert (code / "pkg" / "util.py").read_text() == "X = 1\n"


def test_local_dir_and_file_url_are_copied(tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "sub").mkdir(parents=True)
    (source / "train.py").write_text("a")
    (source / "sub" / "b.txt").write_text("b")
    code = tmp_path / "code"
    prepare_code(f"file://{source}", code, {})
    assert (code / "train.py").read_text() == "a"
    assert (code / "sub" / "b.txt").read_text() == "b"


def test_missing_submit_dir_is_a_client_error(tmp_path: Path) -> None:
    with pytest.raises(ClientError, match="does not exist"):
        prepare_code(str(tmp_path / "nope.tar.gz"), tmp_path / "code", {})


@pytest.mark.parametrize(
    ("members", "links"),
    [
        ({"ok.py": b"", "../evil.txt": b"x"}, None),
        ({"a/../../evil.txt": b"x"}, None),
        ({"/tmp/evil.txt": b"x"}, None),
        ({}, {"link": "/etc"}),
        ({}, {"sub/link": "../../outside"}),
    ],
)
def test_tar_members_outside_the_code_dir_are_refused(
    tmp_path: Path, members: dict[str, bytes], links: dict[str, str] | None
) -> None:
    tarball = make_tarball(tmp_path / "evil.tar.gz", members, links)
    code = tmp_path / "jail" / "code"
    with pytest.raises(ClientError, match="path traversal"):
        safe_extract(tarball, code)
    assert list(code.iterdir()) == []
    assert not (tmp_path / "jail" / "evil.txt").exists()


def test_links_inside_the_code_dir_are_kept(tmp_path: Path) -> None:
    tarball = make_tarball(tmp_path / "t.tar.gz", {"real.py": b"1"}, {"alias.py": "real.py"})
    code = tmp_path / "code"
    safe_extract(tarball, code)
    assert (code / "alias.py").read_text() == "1"


def test_a_corrupt_tarball_is_a_client_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"\x1f\x8b" + b"garbage" * 10)
    with pytest.raises(ClientError, match="Could not extract"):
        safe_extract(bad, tmp_path / "code")


def test_entry_point_types(tmp_path: Path) -> None:
    assert entry_point_type(tmp_path, "train.py") is EntryPointType.PROGRAM
    assert entry_point_type(tmp_path, "run.sh") is EntryPointType.COMMAND
    assert entry_point_type(tmp_path, "train") is EntryPointType.COMMAND
    (tmp_path / "setup.py").write_text("")
    assert entry_point_type(tmp_path, "train.py") is EntryPointType.PACKAGE
    assert entry_point_type(tmp_path, "run.sh") is EntryPointType.COMMAND


def test_commands() -> None:
    args = ["--msg", "hello world", "--n", "1"]
    assert command(EntryPointType.PROGRAM, "train.py", args) == [sys.executable, "train.py", *args]
    assert command(EntryPointType.PACKAGE, "train.py", args) == [
        sys.executable,
        "-m",
        "train",
        *args,
    ]
    assert command(EntryPointType.COMMAND, "run.sh", args) == [
        "/bin/sh",
        "-c",
        "./run.sh --msg 'hello world' --n 1",
    ]


def test_python_path_puts_the_code_dir_first() -> None:
    entries = python_path("/opt/ml/code").split(":")
    assert entries[0] == "/opt/ml/code"
    assert len(entries) == len(set(entries))
    assert "" not in entries
