"""Reach a container's TCP port through a Unix socket: `python -m opensage.runtime.netproxy
SOCKET PORT -- BWRAP_ARGV...`.

An image's model server listens on port 8080, as SageMaker's contract says, so every container
needs its own network namespace (`bwrap --unshare-net`), or two instances would fight over the
port. The host cannot reach a port in such a namespace directly; this wrapper can. It starts
bubblewrap (whose argv holds `{info_fd}` where bubblewrap is to write the sandbox's pid), then
forks a proxy that enters the sandbox's user and network namespaces (`setns`, allowed to the
namespace's owner) and, for every connection accepted on SOCKET (bound on the host before it
entered them), connects to 127.0.0.1:PORT inside and copies bytes both ways. The platform talks
to the Unix socket exactly as it talks to its own model servers.

With `--outbound`, the sandbox's namespace also gets a way out: bubblewrap waits on `{block_fd}`
until `slirp4netns` has given the namespace a tap device (user-mode networking: the container
reaches the outside, and the host's loopback as 10.0.2.2, as a SageMaker model without network
isolation reaches the network), so the program never starts without it.

With `--engine ENGINE NAME` first, the argv is a container engine's `run --publish
127.0.0.1::PORT`: the wrapper asks the engine (`ENGINE port NAME PORT/tcp`) which loopback port
it picked, and the proxy forwards there, entering no namespace.

The wrapper waits for its child and exits with its status; SIGTERM is for the container (its
process group receives it), so the wrapper and the proxy ignore it and leave with the container.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
INFO_FD = "{info_fd}"
BLOCK_FD = "{block_fd}"
HOST_LOOPBACK = "10.0.2.2"  # the host's 127.0.0.1 as slirp4netns shows it to the namespace


def _setns(path: str, kind: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, kind) != 0:
            error = ctypes.get_errno()
            raise OSError(error, f"setns({path}): {os.strerror(error)}")
    finally:
        os.close(fd)


def enter_namespaces(pid: int) -> None:
    """Join `pid`'s network namespace (and its user namespace first, when it has its own)."""
    own = os.readlink("/proc/self/ns/user")
    if os.readlink(f"/proc/{pid}/ns/user") != own:
        _setns(f"/proc/{pid}/ns/user", CLONE_NEWUSER)
    _setns(f"/proc/{pid}/ns/net", CLONE_NEWNET)


def _pump(source: socket.socket, target: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(1 << 16):
            target.sendall(data)
    with contextlib.suppress(OSError):
        target.shutdown(socket.SHUT_WR)


def _serve_connection(client: socket.socket, port: int) -> None:
    try:
        upstream = socket.create_connection(("127.0.0.1", port), timeout=5)
        upstream.settimeout(None)
    except OSError:
        client.close()  # not listening yet: the platform's /ping sees a reset and polls again
        return
    upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
    back.start()
    _pump(client, upstream)
    back.join()
    client.close()
    upstream.close()


def proxy(listener: socket.socket, pid: int | None, port: int) -> None:
    """In a forked child: enter the sandbox's namespaces (when it has a pid) and forward
    connections forever."""
    if pid is not None:
        enter_namespaces(pid)
    while True:
        client, _ = listener.accept()
        threading.Thread(target=_serve_connection, args=(client, port), daemon=True).start()


def _sandbox_pid(read_fd: int) -> int:
    with os.fdopen(read_fd, "rb") as info:
        data = info.read()
    return int(json.loads(data)["child-pid"])


def _published_port(engine: str, name: str, port: int, child: subprocess.Popen[bytes]) -> int:
    """The loopback port the engine published `port` on, once the container exists."""
    while child.poll() is None:
        done = subprocess.run([engine, "port", name, f"{port}/tcp"], capture_output=True,
                              text=True, timeout=30)  # fmt: skip
        for line in done.stdout.splitlines():
            host, _, published = line.strip().rpartition(":")
            if published.isdigit() and host in ("127.0.0.1", "0.0.0.0"):
                return int(published)
        time.sleep(0.1)
    raise OSError("the container ended before its port was published")


def _loopback_ready(pid: int, timeout: float = 10.0) -> bool:
    """Whether bubblewrap has configured the namespace's loopback (127.0.0.1 is in its routing
    trie): slirp4netns configuring the namespace at the same time makes bubblewrap fail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if "127.0.0.1" in Path(f"/proc/{pid}/net/fib_trie").read_text():
                return True
        except OSError:
            return False  # the sandbox is gone
        time.sleep(0.005)
    return False


def _outbound(pid: int) -> subprocess.Popen[bytes] | None:
    """slirp4netns on the sandbox's network namespace, once its tap device is up."""
    if not _loopback_ready(pid):
        print("opensage netproxy: the sandbox's loopback never came up", file=sys.stderr)
        return None
    ready_read, ready_write = os.pipe()
    try:
        slirp = subprocess.Popen(
            ["slirp4netns", "--configure", "--mtu=65520", "--ready-fd", str(ready_write),
             str(pid), "tap0"],
            pass_fds=(ready_write,), stdout=subprocess.DEVNULL,
        )  # fmt: skip
    except OSError as exc:
        print(f"opensage netproxy: no outbound network: {exc}", file=sys.stderr, flush=True)
        os.close(ready_read)
        return None
    finally:
        os.close(ready_write)
    with os.fdopen(ready_read, "rb") as ready:
        if ready.read(1) != b"1":
            print("opensage netproxy: slirp4netns failed; no outbound network", file=sys.stderr)
    return slirp


def run(
    socket_path: Path,
    port: int,
    argv: list[str],
    engine: tuple[str, str] | None,
    outbound: bool = False,
) -> int:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with contextlib.suppress(FileNotFoundError):
        socket_path.unlink()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(socket_path))
    listener.listen(128)
    pid: int | None = None
    slirp: subprocess.Popen[bytes] | None = None
    if engine is not None:
        child = subprocess.Popen(argv)
        try:
            port = _published_port(*engine, port, child)
        except (OSError, subprocess.TimeoutExpired):
            return child.wait()  # the engine said why
    else:
        read_fd, write_fd = os.pipe()
        block_read, block_write = os.pipe()
        fds = {INFO_FD: str(write_fd), BLOCK_FD: str(block_read)}
        argv = [fds.get(arg, arg) for arg in argv]
        child = subprocess.Popen(argv, pass_fds=(write_fd, block_read))
        os.close(write_fd)
        os.close(block_read)
        try:
            pid = _sandbox_pid(read_fd)
        except (ValueError, KeyError, OSError):
            os.close(block_write)
            return child.wait()  # bubblewrap failed before starting the sandbox; it said why
        slirp = _outbound(pid) if outbound else None
        with contextlib.suppress(BrokenPipeError):  # bubblewrap failed: its status says why
            os.write(block_write, b"go")  # the program starts now, its network (if any) ready
        os.close(block_write)
    helper = os.fork()
    if helper == 0:
        code = 0
        try:
            proxy(listener, pid, port)
        except BaseException as exc:  # a forked child must never return into our caller
            print(f"opensage netproxy: {exc}", file=sys.stderr, flush=True)
            code = 1
        os._exit(code)
    listener.close()
    code = child.wait()
    with contextlib.suppress(ProcessLookupError):
        os.kill(helper, signal.SIGKILL)
    os.waitpid(helper, 0)
    if slirp is not None:
        slirp.kill()
        slirp.wait()
    with contextlib.suppress(FileNotFoundError):
        socket_path.unlink()
    return code if code >= 0 else 128 - code


def main() -> None:
    args = sys.argv[1:]
    engine = None
    outbound = args[:1] == ["--outbound"]
    args = args[1:] if outbound else args
    if args[:1] == ["--engine"] and len(args) > 2:
        engine, args = (args[1], args[2]), args[3:]
    if len(args) < 4 or args[2] != "--":
        sys.exit(
            "usage: python -m opensage.runtime.netproxy [--outbound] [--engine ENGINE NAME] "
            "SOCKET PORT -- ARGV..."
        )
    sys.exit(run(Path(args[0]), int(args[1]), args[3:], engine, outbound))


if __name__ == "__main__":
    main()
