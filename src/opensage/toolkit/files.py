"""Getting the user's code into the code dir: pre-extracted, a local tarball or dir, or S3."""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlparse

from opensage.toolkit.errors import ClientError


def prepare_code(module_dir: str, code_dir: Path, environ: Mapping[str, str]) -> str:
    """Make `code_dir` hold the user's code; return a word on where it came from.

    A non-empty code dir is used as it is: the platform pre-extracts `sourcedir.tar.gz` there
    (toolkits since 2025-09 skip the download then). Otherwise `module_dir` (the
    `sagemaker_submit_directory`) is fetched: `s3://` is downloaded and extracted, a local
    tarball extracted (the network-isolation `code` channel), a local dir copied, and any other
    local file copied in.
    """
    code_dir.mkdir(parents=True, exist_ok=True)
    if any(code_dir.iterdir()):
        return f"using the code already in {code_dir}"
    if module_dir.startswith("s3://"):
        with tempfile.TemporaryDirectory(prefix="opensage-sourcedir-") as tmp:
            tarball = Path(tmp) / "sourcedir.tar.gz"
            s3_download(module_dir, tarball, environ)
            safe_extract(tarball, code_dir)
        return f"downloaded and extracted {module_dir}"
    source = Path(module_dir.removeprefix("file://"))
    if not source.exists():
        raise ClientError(
            f"The submit directory {module_dir} does not exist and the code dir {code_dir} "
            "is empty: there is no user code to run."
        )
    if source.is_dir():
        if source.resolve() == code_dir.resolve():
            return f"the code dir {code_dir} is empty"
        shutil.copytree(source, code_dir, dirs_exist_ok=True, symlinks=True)
        return f"copied {source}"
    if tarfile.is_tarfile(source):
        safe_extract(source, code_dir)
        return f"extracted {source}"
    shutil.copy2(source, code_dir)
    return f"copied {source}"


def _inside(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


def safe_extract(tarball: Path, dest: Path) -> None:
    """Extract `tarball` into `dest`, refusing any member that would land outside it.

    Absolute names, `..` escapes, links pointing out of `dest` and device files are refused
    before anything is written; extraction then runs under tarfile's `data` filter as well.
    """
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    try:
        with tarfile.open(tarball, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                _check_member(member, root, tarball)
            tar.extractall(root, members=members, filter="data")
    except tarfile.TarError as exc:
        raise ClientError(f"Could not extract {tarball}: {exc}") from exc


def _check_member(member: tarfile.TarInfo, root: Path, tarball: Path) -> None:
    def refuse(why: str) -> ClientError:
        return ClientError(
            f"Refusing to extract {tarball}: member {member.name!r} {why} (path traversal)."
        )

    if os.path.isabs(member.name) or not _inside((root / member.name).resolve(), root):
        raise refuse(f"would be written outside {root}")
    if member.issym():
        if os.path.isabs(member.linkname):
            raise refuse(f"is a link to the absolute path {member.linkname!r}")
        target = (root / member.name).parent / member.linkname
        if not _inside(target.resolve(), root):
            raise refuse(f"links to {member.linkname!r}, outside {root}")
    elif member.islnk() and not _inside((root / member.linkname).resolve(), root):
        raise refuse(f"hard-links to {member.linkname!r}, outside {root}")
    elif member.isdev():
        raise refuse("is a device file")


def s3_download(uri: str, dst: Path, environ: Mapping[str, str]) -> None:
    """Download one S3 object with boto3, honouring `S3_ENDPOINT_URL` and `AWS_REGION`."""
    parsed = urlparse(uri)
    bucket, key = parsed.netloc, parsed.path.lstrip("/")
    if parsed.scheme != "s3" or not bucket or not key:
        raise ClientError(f"Not an S3 object URI: {uri}")
    region = environ.get("AWS_REGION") or environ.get("SAGEMAKER_REGION") or None
    endpoint = environ.get("S3_ENDPOINT_URL") or None
    try:
        import boto3

        client = boto3.client("s3", region_name=region, endpoint_url=endpoint)
        client.download_file(bucket, key, str(dst))
    except Exception as exc:
        where = f" from {endpoint}" if endpoint else ""
        raise ClientError(
            f"Failed to download the user code {uri}{where}: {type(exc).__name__}: {exc}"
        ) from exc


def write_success_file(success_file: Path) -> None:
    success_file.parent.mkdir(parents=True, exist_ok=True)
    success_file.touch()
