"""The `sandbox` runtime: bubblewrap, with the job folder bind-mounted at the real `/opt/ml`.

Two kinds of program run here:
- the platform's own programs (built-in algorithms, the toolkit, the model server) on the host's
  root, mounted read-only so they find the same Python and packages, with a private `/tmp`;
  when `/opt/ml` does not exist on the host, `/opt` is rebuilt as a tmpfs with the host's
  entries bound back, so the mount point can be created;
- a container image, on its unpacked root (read-only; `/opt/ml`, `/tmp` and `/dev/shm`
  writable), with exactly the environment the platform gives it (nothing of the host's) and its
  working directory. Its model server gets its own network namespace, reached through
  `opensage.runtime.netproxy`, so every instance can listen on port 8080; without network
  isolation, slirp4netns (where installed) gives that namespace the outside network, and the
  platform's endpoint URLs are rewritten to the host loopback's address there (10.0.2.2).

`--unshare-net` gives `EnableNetworkIsolation` its meaning: the program has only its own
loopback and cannot reach the host's.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from opensage.contract import BASE_DIR_ENV, DEFAULT_BASE_DIR
from opensage.runtime.base import ContainerSpec
from opensage.runtime.netproxy import BLOCK_FD, HOST_LOOPBACK, INFO_FD


class SandboxRuntime:
    name = "sandbox"

    def wrap(self, spec: ContainerSpec) -> tuple[list[str], dict[str, str]]:
        if spec.root is not None:
            return self._wrap_image(spec, spec.root)
        bwrap = shutil.which("bwrap") or "bwrap"
        argv = [
            bwrap,
            "--ro-bind", "/", "/",
            "--dev", "/dev",
            "--proc", "/proc",
            "--tmpfs", "/tmp",
            *_python_mounts(Path("/tmp")),
            *_opt_mounts(Path(DEFAULT_BASE_DIR)),
            "--bind", str(spec.job_dir), DEFAULT_BASE_DIR,
            "--unshare-pid",
            "--die-with-parent",
            "--chdir", DEFAULT_BASE_DIR,
        ]  # fmt: skip
        if spec.network_isolation:
            argv.append("--unshare-net")
        env = {**os.environ, **spec.env}
        env.pop(BASE_DIR_ENV, None)  # inside the sandbox the tree is the real /opt/ml
        return [*argv, "--", *spec.command], env

    def _wrap_image(self, spec: ContainerSpec, root: Path) -> tuple[list[str], dict[str, str]]:
        bwrap = shutil.which("bwrap") or "bwrap"
        argv = [
            bwrap,
            "--ro-bind", str(root), "/",
            "--dev", "/dev",
            "--tmpfs", "/dev/shm",
            "--proc", "/proc",
            "--tmpfs", "/tmp",
            "--bind", str(spec.job_dir), DEFAULT_BASE_DIR,
            "--unshare-pid",
            "--die-with-parent",
            "--chdir", spec.workdir or "/",
            "--clearenv",
        ]  # fmt: skip
        if spec.user is not None:
            uid, _, gid = spec.user.partition(":")
            argv += ["--unshare-user", "--uid", uid, "--gid", gid or uid]
        outbound = (
            spec.serve_port is not None
            and not spec.network_isolation
            and shutil.which("slirp4netns") is not None
        )
        for key, value in spec.env.items():
            argv += ["--setenv", key, _via_slirp(value) if outbound else value]
        if spec.serve_port is not None:
            argv += ["--unshare-net", "--info-fd", INFO_FD, "--block-fd", BLOCK_FD,
                     "--", *spec.command]  # fmt: skip
            proxy = [sys.executable, "-m", "opensage.runtime.netproxy",
                     *(["--outbound"] if outbound else []),
                     str(spec.job_dir / "serving.sock"), str(spec.serve_port), "--"]  # fmt: skip
            return [*proxy, *argv], dict(os.environ)
        if spec.network_isolation:
            argv.append("--unshare-net")
        return [*argv, "--", *spec.command], dict(os.environ)

    def container_base(self, spec: ContainerSpec) -> str:
        return DEFAULT_BASE_DIR


def _via_slirp(value: str) -> str:
    """A URL of the host's loopback (the platform's own endpoint) as the namespace reaches it."""
    for loopback in ("http://127.0.0.1:", "http://localhost:"):
        if value.startswith(loopback):
            return f"http://{HOST_LOOPBACK}:" + value.removeprefix(loopback)
    return value


def _python_mounts(private: Path) -> list[str]:
    """Bind back, read-only, what this Python needs from under a folder the sandbox replaces.

    A checkout (and its `.venv`) may live under /tmp, as CI clones often do; the job's private
    /tmp must not hide the interpreter and packages the program runs on.
    """
    needed = {Path(p) for p in (sys.prefix, sys.base_prefix, *sys.path) if p}
    mounts: list[str] = []
    for path in sorted(needed):
        resolved = path.resolve()
        if resolved.is_relative_to(private) and resolved.exists():
            if any(resolved.is_relative_to(Path(m)) for m in mounts[2::3]):
                continue  # inside a folder already bound
            mounts += ["--ro-bind", str(resolved), str(resolved)]
    return mounts


def _opt_mounts(target: Path) -> list[str]:
    parent = target.parent
    if target.exists() or not parent.exists():
        return []
    mounts = ["--tmpfs", str(parent)]
    for entry in sorted(parent.iterdir()):
        mounts += ["--ro-bind", str(entry), str(entry)]
    return mounts
